// The control socket between ftctl and ftd: a root-only unix socket, one request per
// connection, each message framed as u32 big-endian length + serialized protobuf
// (docs/formats/control-socket.md). Payloads are opaque bytes here so no protobuf or Asio
// header leaks into the daemon's headers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "ft/status.h"

namespace asio {
class io_context;
}

namespace ft::daemon {

constexpr uint32_t kControlVersion = 1;
constexpr uint32_t kMaxControlMessage = 1 << 20;

// Length prefix + payload.
std::string FrameControlMessage(const std::string& payload);
// The length in a 4-byte header; InvalidArgument if over kMaxControlMessage.
Result<uint32_t> ParseControlFrameLength(std::string_view header);

// Blocking request/response for ftctl. kUnavailable when nothing listens (daemon not
// running), naming the socket.
Result<std::string> CallControlSocket(const std::string& socket_path, const std::string& request,
                                      std::chrono::milliseconds timeout);

class ControlServer {
 public:
  // Answers a request payload with a response payload, now or later (a drill takes seconds),
  // exactly once; runs on the io_context thread.
  using Respond = std::function<void(std::string response)>;
  using Handler = std::function<void(const std::string& request, Respond respond)>;
  ControlServer(asio::io_context& io, std::string socket_path, Handler handler);
  ~ControlServer();
  // Binds (replacing a stale socket file no daemon answers on) with mode 0600.
  Status Start();
  // Stops accepting and removes the socket file.
  void Stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace ft::daemon
