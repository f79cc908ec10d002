// Internal to ftd: requests between the two ftds themselves (turn a VM's backup on or off,
// hand a VM over, ask how a VM is doing), on an authenticated logging-channel session whose
// service is channel::Service::kPeerControl. One request per session: the caller connects, sends a
// PeerRequest, reads the PeerResponse and closes. Payloads are serialized protobuf bytes so
// no protobuf or Asio header leaks in here.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "ft/daemon/config.h"
#include "ft/status.h"

namespace asio {
class io_context;
}
namespace ft::channel {
class Session;
struct Identity;
}  // namespace ft::channel
namespace ft::proto {
class PeerResponse;
}

namespace ft::daemon {

// This node's handshake identity on peer-control sessions.
channel::Identity PeerControlIdentity(const NodeConfig& node);

// The calling side of several requests in a row on one session (a replica's chunks).
// Errors: kUnavailable naming the peer's address when it cannot be reached or authenticated
// (the message says which) or closes, kTimeout when it does not answer in time. After an
// error the conversation is over.
class PeerConversation : public std::enable_shared_from_this<PeerConversation> {
 public:
  using Opened = std::function<void(Result<std::shared_ptr<PeerConversation>>)>;
  static void Open(asio::io_context& io, const NodeConfig& node, std::chrono::milliseconds timeout,
                   Opened done);
  ~PeerConversation();
  // One request; the next may be asked once `done` ran.
  void Ask(std::string request, std::chrono::milliseconds timeout,
           std::function<void(Result<std::string> response)> done);
  void Close();

 private:
  struct Impl;
  explicit PeerConversation(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The peer's answer into `response`, or why there is none: the call's own error
// (kUnavailable/kTimeout), or kDataLoss naming the peer for an answer that does not parse.
Status ParsePeerAnswer(const NodeConfig& node, const Result<std::string>& answer,
                       proto::PeerResponse& response);

// One request on its own session (Open, Ask, Close).
void CallPeer(asio::io_context& io, const NodeConfig& node, std::string request,
              std::chrono::milliseconds timeout,
              std::function<void(Result<std::string> response)> done);

// The answering side: the listener hands it each authenticated peer-control session.
class PeerServer {
 public:
  using Respond = std::function<void(std::string response)>;
  using Handler = std::function<void(const std::string& request, Respond respond)>;
  PeerServer(asio::io_context& io, Handler handler);
  ~PeerServer();
  void Adopt(std::shared_ptr<channel::Session> session);
  void Close();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace ft::daemon
