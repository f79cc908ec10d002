// One TCP connection of the logging channel, from connect/accept through the handshake to
// the open session. Private to the module; session.cc wraps it as ft::channel::Session.
// Single-threaded: every method and handler runs on the io_context's one thread.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <spdlog/logger.h>
#include <asio.hpp>

#include "frame.h"
#include "ft/channel/session.h"
#include "handshake.h"

namespace ft::proto {
class ChannelFrame;
class Hello;
}  // namespace ft::proto

namespace ft::channel {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // Called once when the handshake ends: ok (the session is open) or why it failed. Not
  // called after Close().
  using HandshakeDone = std::function<void(std::shared_ptr<Connection>, Status)>;

  Connection(asio::io_context& io, Role role, Options options, std::string peer_address);
  ~Connection();

  void StartConnect(const std::string& host, uint16_t port, Identity self, HandshakeDone done);
  void StartAccept(asio::ip::tcp::socket socket, Listener::ExpectFn expect, HandshakeDone done);

  // Session API (see ft/channel/session.h).
  void SendLog(uint64_t offset, std::string_view data);
  void SendAck(uint64_t received_offset, uint64_t replayed_icount);
  void OnLog(std::function<void(uint64_t, std::string_view)> cb);
  void OnAck(std::function<void(uint64_t, uint64_t)> cb);
  void OnClosed(std::function<void(Status)> cb);
  void Close();
  void SendMessage(std::string_view payload);
  void OnMessage(std::function<void(std::string_view)> cb);
  void GoSilent();
  // The peer proved the channel key (its mac verified).
  bool authenticated() const { return authenticated_; }
  // `release` runs once, when the connection no longer holds a listener's handshake slot:
  // the session opened, or the socket closed (after a refusal's linger, too).
  void HoldHandshakeSlot(std::function<void()> release);
  const Identity& peer() const { return peer_; }
  const SessionStats& stats() const { return stats_; }
  const std::string& peer_address() const { return peer_address_; }

 private:
  enum class State { kConnecting, kHandshake, kOpen, kLingering, kClosed };
  enum class Step {
    // connector
    kAwaitChallenge,
    kAwaitAcceptorHello,
    kAwaitAcceptorAuth,
    kAwaitWelcome,
    // acceptor
    kAwaitHello,
    kAwaitAuth,
  };
  struct OutFrame {
    FrameHeader header;
    std::string payload;
    uint64_t log_bytes = 0;
  };
  struct HeldLog {
    uint64_t offset;
    std::string data;
  };
  struct HeldAck {
    uint64_t received_offset, replayed_icount;
  };
  struct HeldMessage {
    std::string payload;
  };

  void OnConnected(std::error_code ec);
  void BeginIo();
  void ArmHandshakeTimer();
  void StartRead();
  void OnRead(std::error_code ec, size_t n);
  void HandleFrame(std::string_view payload);
  void HandleConnectorStep(const proto::ChannelFrame& f, std::string_view payload);
  void HandleAcceptorStep(const proto::ChannelFrame& f, std::string_view payload);
  void HandleRefusal(const proto::ChannelFrame& f);
  void HandleSessionFrame(const proto::ChannelFrame& f);
  // `states_identity`: a hello that says who the peer is (not the acceptor's challenge).
  Status CheckHello(const proto::Hello& hello, bool states_identity) const;

  void Open();
  void Refuse(int code, const std::string& reason, Status local);
  void Fail(Status s);
  void FinishHandshake(Status s);
  void CloseSocket();
  void ReleaseHandshakeSlot();

  void QueueFrame(const proto::ChannelFrame& f, uint64_t log_bytes = 0);
  void QueuePayload(std::string payload, uint64_t log_bytes);
  void StartWrite();
  void OnWrite(std::error_code ec);

  void ArmHeartbeat();
  void SendHeartbeat();
  void ArmWatchdog();

  void DeliverLog(uint64_t offset, std::string_view data);
  void DeliverAck(uint64_t received_offset, uint64_t replayed_icount);
  void DeliverMessage(std::string_view payload);
  void FlushHeld();
  void ScheduleFlushHeld();

  Status SocketError(std::error_code ec) const;
  std::string StepName() const;
  std::string PeerName() const;  // "peer 'hostB' (10.0.0.2:7000)"

  asio::io_context& io_;
  Role role_;
  Options options_;
  std::string peer_address_;
  std::string prefix_;  // "vm 'web1': " once the vm is known
  std::shared_ptr<spdlog::logger> log_;

  asio::ip::tcp::socket socket_;
  asio::ip::tcp::resolver resolver_;
  asio::steady_timer handshake_timer_;  // also bounds the lingering close after a refusal
  asio::steady_timer heartbeat_timer_;
  asio::steady_timer watchdog_timer_;
  std::optional<FrameDecoder> decoder_;
  std::array<char, 4096> discard_{};

  State state_ = State::kConnecting;
  Step step_ = Step::kAwaitHello;
  bool authenticated_ = false;
  std::function<void()> release_slot_;
  HandshakeDone handshake_done_;
  Listener::ExpectFn expect_;
  Identity self_, peer_;
  std::string own_nonce_, peer_nonce_;
  std::string own_hello_frame_, peer_hello_frame_;  // ChannelFrame payloads the macs cover

  std::deque<OutFrame> queue_;
  std::vector<asio::const_buffer> write_buffers_;
  size_t frames_in_flight_ = 0;
  bool writing_ = false;

  std::function<void(uint64_t, std::string_view)> on_log_;
  std::function<void(uint64_t, uint64_t)> on_ack_;
  std::function<void(Status)> on_closed_;
  std::function<void(std::string_view)> on_message_;
  std::deque<std::variant<HeldLog, HeldAck, HeldMessage>>
      held_;  // arrived before their callback was set
  bool flush_scheduled_ = false;
  bool silent_ = false;  // GoSilent(): playing dead
  std::optional<Status> undelivered_close_;

  SessionStats stats_;
  uint64_t next_log_offset_ = 0;   // receiver: where the next chunk must start
  uint64_t next_send_offset_ = 0;  // sender: end of the log handed to SendLog
  uint64_t last_ack_offset_ = 0, last_ack_icount_ = 0;
  std::chrono::steady_clock::time_point last_rx_;
  uint64_t peer_heartbeat_ns_ = 0;  // peer's sent_mono_ns of its last heartbeat, to echo
  uint64_t peer_heartbeat_at_ns_ = 0;
};

// Wraps an open connection as the public Session. Dropping the last reference closes it.
std::shared_ptr<Session> MakeSession(std::shared_ptr<Connection> connection);

// "10.0.0.2:7000", "[fe80::1]:7000"
std::string EndpointString(const asio::ip::tcp::endpoint& ep);

}  // namespace ft::channel
