// Test helpers for the logging channel: an io_context on its own thread, a blocking raw-socket
// peer that speaks the wire format by hand (to inject what a real session never sends), and a
// TCP proxy that records what a real connector sends.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <asio.hpp>

#include "frame.h"
#include "ft/proto/channel.pb.h"
#include "handshake.h"

namespace ft::channel::testing {

using namespace std::chrono_literals;

// Runs an io_context on a thread. The channel is single-threaded: the test touches sessions
// and their state only through Run(), which executes on that thread.
class IoThread {
 public:
  IoThread() : guard_(asio::make_work_guard(io)), thread_([this] { io.run(); }) {}
  ~IoThread() { Stop(); }
  void Stop() {
    if (!thread_.joinable()) return;
    guard_.reset();
    io.stop();
    thread_.join();
  }
  template <typename F>
  auto Run(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    asio::post(io, [&task] { task(); });
    return result.get();
  }
  // Polls `pred` on the io thread until it holds or `timeout` passes.
  bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (Run(pred)) return true;
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(2ms);
    }
  }

  asio::io_context io;

 private:
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
};

// `source`: the local address to connect from ("127.0.0.2": all of 127/8 is loopback), so a
// test can stand for peers on several hosts; null: the kernel's choice (127.0.0.1).
inline int ConnectLoopback(uint16_t port, const char* source = nullptr) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (source) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &local.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
      ::close(fd);
      return -1;
    }
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

inline bool WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// A peer on a plain blocking socket.
class RawPeer {
 public:
  explicit RawPeer(uint16_t port, const char* source = nullptr)
      : fd_(ConnectLoopback(port, source)), decoder_(64 << 20, "listener") {}
  // Takes over a socket the test connected itself.
  struct AdoptFd {
    int fd;
  };
  explicit RawPeer(AdoptFd adopt) : fd_(adopt.fd), decoder_(64 << 20, "listener") {}
  ~RawPeer() { Close(); }
  bool connected() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool Send(std::string_view bytes) {
    sent_ += bytes;
    return WriteAll(fd_, bytes);
  }
  bool SendFrame(const proto::ChannelFrame& f) { return Send(EncodeFrame(f.SerializeAsString())); }
  const std::string& sent() const { return sent_; }

  // The next frame's payload, or nullopt on EOF, error or timeout.
  std::optional<std::string> ReadPayload(std::chrono::milliseconds timeout = 3000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto next = decoder_.Next();
      if (!next.ok()) return std::nullopt;
      if (next->has_value()) return std::string(**next);
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return std::nullopt;
      decoder_.Append(std::string_view(buf, static_cast<size_t>(n)));
    }
  }
  std::optional<proto::ChannelFrame> ReadFrame(std::chrono::milliseconds timeout = 3000ms) {
    auto payload = ReadPayload(timeout);
    if (!payload) return std::nullopt;
    proto::ChannelFrame f;
    if (!f.ParseFromString(*payload)) return std::nullopt;
    last_payload_ = *payload;
    return f;
  }
  const std::string& last_payload() const { return last_payload_; }

  // True once the other side has closed the connection (EOF or reset), skipping any frames.
  bool WaitClosed(std::chrono::milliseconds timeout = 3000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[65536];
      if (::recv(fd_, buf, sizeof buf, 0) <= 0) return true;
    }
    return false;
  }

  // The connector's side of the handshake, by hand. Returns "" on welcome, else what went
  // wrong.
  std::string Handshake(const Identity& self, const std::string& key) {
    auto nonce = MakeNonce();
    proto::ChannelFrame hello;
    FillHello(self, *nonce, hello.mutable_hello());
    const std::string hello_payload = hello.SerializeAsString();
    Send(EncodeFrame(hello_payload));
    auto challenge = ReadFrame();
    if (!challenge || !challenge->has_hello()) return "no challenge";
    proto::ChannelFrame auth;
    auth.mutable_auth()->set_mac(HandshakeMac(
        key, Role::kConnector, *nonce, challenge->hello().nonce(), hello_payload, last_payload()));
    SendFrame(auth);
    for (int i = 0; i < 3; ++i) {
      auto f = ReadFrame();
      if (!f) return "connection ended";
      if (f->has_refusal()) return "refused: " + f->refusal().reason();
      if (f->has_welcome()) return "";
    }
    return "no welcome";
  }

 private:
  int fd_;
  FrameDecoder decoder_;
  std::string sent_, last_payload_;
};

// A listening socket that plays the acceptor by hand: accepts one connection, sends `reply`
// (raw bytes) once the connector's first bytes arrived, and holds the connection until destroyed.
class RawAcceptor {
 public:
  explicit RawAcceptor(std::string reply) : reply_(std::move(reply)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(listen_fd_, 1);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~RawAcceptor() {
    stop_ = true;
    thread_.join();
    if (conn_fd_ >= 0) ::close(conn_fd_);
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }

 private:
  void Serve() {
    pollfd lp{listen_fd_, POLLIN, 0};
    while (!stop_ && ::poll(&lp, 1, 20) <= 0) {
    }
    if (stop_) return;
    conn_fd_ = ::accept(listen_fd_, nullptr, nullptr);
    pollfd p{conn_fd_, POLLIN, 0};
    while (!stop_ && ::poll(&p, 1, 20) <= 0) {
    }
    char buf[4096];
    if (stop_ || ::recv(conn_fd_, buf, sizeof buf, 0) <= 0) return;
    WriteAll(conn_fd_, reply_);
    while (!stop_) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  std::string reply_;
  int listen_fd_ = -1, conn_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Forwards one connection from a local port to `upstream_port`, recording both directions.
class RecordingProxy {
 public:
  explicit RecordingProxy(uint16_t upstream_port) : upstream_port_(upstream_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(listen_fd_, 1);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Pump(); });
  }
  ~RecordingProxy() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  std::string client_to_server() {
    std::lock_guard<std::mutex> lock(mu_);
    return c2s_;
  }

 private:
  void Pump() {
    pollfd lp{listen_fd_, POLLIN, 0};
    while (!stop_ && ::poll(&lp, 1, 20) <= 0) {
    }
    if (stop_) return;
    int c = ::accept(listen_fd_, nullptr, nullptr);
    int u = ConnectLoopback(upstream_port_);
    pollfd p[2] = {{c, POLLIN, 0}, {u, POLLIN, 0}};
    char buf[65536];
    while (!stop_) {
      if (::poll(p, 2, 20) <= 0) continue;
      bool done = false;
      for (int i = 0; i < 2; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = ::recv(p[i].fd, buf, sizeof buf, 0);
        if (n <= 0) {
          done = true;
          break;
        }
        if (i == 0) {
          std::lock_guard<std::mutex> lock(mu_);
          c2s_.append(buf, static_cast<size_t>(n));
        }
        WriteAll(p[1 - i].fd, std::string_view(buf, static_cast<size_t>(n)));
      }
      if (done) break;
    }
    ::close(c);
    ::close(u);
  }

  uint16_t upstream_port_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string c2s_;
  std::thread thread_;
};

}  // namespace ft::channel::testing
