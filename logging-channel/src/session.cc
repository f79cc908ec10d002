// The logging channel's connection: handshake state machine, framed reads, a write queue with
// one gathered write in flight, heartbeats and the silence watchdog.
#include <algorithm>
#include <utility>

#include <google/protobuf/stubs/logging.h>

#include "connection.h"
#include "ft/log.h"
#include "ft/proto/channel.pb.h"
#include "preauth.h"

namespace ft::channel {
namespace {

using Clock = std::chrono::steady_clock;

// Log data is cut into frames of at most this much (well under max_frame_bytes).
constexpr size_t kMaxLogFrameData = 256 * 1024;
// A gathered write carries at most this many frames / bytes.
constexpr size_t kMaxGatherFrames = 64;
constexpr size_t kMaxGatherBytes = 4 << 20;
constexpr size_t kReadBytes = 64 * 1024;
// Until the session opens, reads are small: a handshake frame is at most
// handshake_max_frame_bytes, and an unauthenticated peer should cost little memory.
constexpr size_t kHandshakeReadBytes = 4 * 1024;
// After a refusal, wait this long at most for the peer to read it and hang up.
constexpr std::chrono::milliseconds kLingerAfterRefusal{1000};

uint64_t MonoNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
          .count());
}

std::string Ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

const char* BodyName(const proto::ChannelFrame& f) {
  switch (f.body_case()) {
    case proto::ChannelFrame::kHello:
      return "hello";
    case proto::ChannelFrame::kAuth:
      return "auth";
    case proto::ChannelFrame::kWelcome:
      return "welcome";
    case proto::ChannelFrame::kRefusal:
      return "refusal";
    case proto::ChannelFrame::kLog:
      return "log chunk";
    case proto::ChannelFrame::kAck:
      return "ack";
    case proto::ChannelFrame::kHeartbeat:
      return "heartbeat";
    case proto::ChannelFrame::kMessage:
      return "peer message";
    case proto::ChannelFrame::BODY_NOT_SET:
      break;
  }
  return "empty or unknown message";
}

// Callbacks are moved out while they run, so one may Close() the session, replace itself or
// drop the last reference to the session without destroying the code that is running.
// `open` tells afterwards whether the session still runs (a closed one keeps no callbacks).
template <typename Fn, typename Open, typename... Args>
void Invoke(Fn& slot, Open open, Args&&... args) {
  Fn cb = std::move(slot);
  slot = nullptr;
  cb(std::forward<Args>(args)...);
  if (!slot && open()) slot = std::move(cb);
}

class SessionHandle final : public Session {
 public:
  explicit SessionHandle(std::shared_ptr<Connection> c) : c_(std::move(c)) {}
  ~SessionHandle() override { c_->Close(); }

  void SendLog(uint64_t offset, std::string_view data) override { c_->SendLog(offset, data); }
  void SendAck(uint64_t received_offset, uint64_t replayed_icount) override {
    c_->SendAck(received_offset, replayed_icount);
  }
  void OnLog(std::function<void(uint64_t, std::string_view)> cb) override {
    c_->OnLog(std::move(cb));
  }
  void OnAck(std::function<void(uint64_t, uint64_t)> cb) override { c_->OnAck(std::move(cb)); }
  void OnClosed(std::function<void(Status)> cb) override { c_->OnClosed(std::move(cb)); }
  void Close() override { c_->Close(); }
  void SendMessage(std::string_view payload) override { c_->SendMessage(payload); }
  void OnMessage(std::function<void(std::string_view)> cb) override {
    c_->OnMessage(std::move(cb));
  }
  void GoSilent() override { c_->GoSilent(); }
  const Identity& peer() const override { return c_->peer(); }
  const SessionStats& stats() const override { return c_->stats(); }

 private:
  std::shared_ptr<Connection> c_;
};

}  // namespace

std::shared_ptr<Session> MakeSession(std::shared_ptr<Connection> connection) {
  return std::make_shared<SessionHandle>(std::move(connection));
}

std::string EndpointString(const asio::ip::tcp::endpoint& ep) {
  std::string addr = ep.address().to_string();
  if (ep.address().is_v6()) addr = "[" + addr + "]";
  return addr + ":" + std::to_string(ep.port());
}

Connection::Connection(asio::io_context& io, Role role, Options options, std::string peer_address)
    : io_(io),
      role_(role),
      options_(std::move(options)),
      peer_address_(std::move(peer_address)),
      log_(Logger("channel")),
      socket_(io),
      resolver_(io),
      handshake_timer_(io),
      heartbeat_timer_(io),
      watchdog_timer_(io) {}

Connection::~Connection() { ReleaseHandshakeSlot(); }

void Connection::HoldHandshakeSlot(std::function<void()> release) {
  release_slot_ = std::move(release);
}

void Connection::ReleaseHandshakeSlot() {
  if (!release_slot_) return;
  auto release = std::move(release_slot_);
  release_slot_ = nullptr;
  release();
}

// --- Connect / accept --------------------------------------------------------------------

void Connection::StartConnect(const std::string& host, uint16_t port, Identity self,
                              HandshakeDone done) {
  self_ = std::move(self);
  prefix_ = self_.service == Service::kPeerControl ? "peer control: " : "vm '" + self_.vm + "': ";
  handshake_done_ = std::move(done);
  state_ = State::kConnecting;
  ArmHandshakeTimer();
  log_->debug("{}connecting to {}", prefix_, peer_address_);
  resolver_.async_resolve(
      host, std::to_string(port),
      [self = shared_from_this(), host](std::error_code ec,
                                        asio::ip::tcp::resolver::results_type results) {
        if (self->state_ != State::kConnecting) return;
        if (ec) {
          self->Fail(Unavailable(self->prefix_ + "cannot resolve '" + host + "': " + ec.message()));
          return;
        }
        asio::async_connect(self->socket_, results,
                            [self](std::error_code cec, const asio::ip::tcp::endpoint&) {
                              self->OnConnected(cec);
                            });
      });
}

void Connection::OnConnected(std::error_code ec) {
  if (state_ != State::kConnecting) return;
  if (ec) {
    Fail(Unavailable(prefix_ + "cannot connect to " + peer_address_ + ": " + ec.message()));
    return;
  }
  std::error_code ignored;
  auto remote = socket_.remote_endpoint(ignored);
  if (!ignored) peer_address_ = EndpointString(remote);
  auto nonce = MakeNonce();
  if (!nonce.ok()) {
    Fail(nonce.status());
    return;
  }
  own_nonce_ = std::move(nonce).value();
  state_ = State::kHandshake;
  step_ = Step::kAwaitChallenge;
  BeginIo();
  proto::ChannelFrame f;
  FillHello(self_, own_nonce_, f.mutable_hello());
  own_hello_frame_ = f.SerializeAsString();
  QueuePayload(own_hello_frame_, 0);
}

void Connection::StartAccept(asio::ip::tcp::socket socket, Listener::ExpectFn expect,
                             HandshakeDone done) {
  socket_ = std::move(socket);
  expect_ = std::move(expect);
  handshake_done_ = std::move(done);
  state_ = State::kHandshake;
  step_ = Step::kAwaitHello;
  ArmHandshakeTimer();
  BeginIo();
}

void Connection::BeginIo() {
  std::error_code ignored;
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
  decoder_.emplace(options_.handshake_max_frame_bytes, peer_address_, "before authentication");
  last_rx_ = Clock::now();
  StartRead();
}

void Connection::ArmHandshakeTimer() {
  handshake_timer_.expires_after(options_.handshake_timeout);
  handshake_timer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (ec) return;
    if (self->state_ == State::kConnecting || self->state_ == State::kHandshake) {
      self->Fail(Timeout(self->prefix_ + "handshake with " + self->peer_address_ +
                         " did not complete within " + Ms(self->options_.handshake_timeout) + " (" +
                         self->StepName() + ")"));
    }
  });
}

std::string Connection::StepName() const {
  if (state_ == State::kConnecting) return "connecting";
  switch (step_) {
    case Step::kAwaitChallenge:
      return "waiting for the peer's hello";
    case Step::kAwaitAcceptorHello:
      return "waiting for the peer to check our authentication";
    case Step::kAwaitAcceptorAuth:
      return "waiting for the peer's authentication";
    case Step::kAwaitWelcome:
      return "waiting for the peer's welcome";
    case Step::kAwaitHello:
      return "waiting for the peer's hello";
    case Step::kAwaitAuth:
      return "waiting for the peer's authentication";
  }
  return "?";
}

std::string Connection::PeerName() const {
  if (peer_.node.empty()) return "peer " + peer_address_;
  return "peer '" + peer_.node + "' (" + peer_address_ + ")";
}

// --- Reading -----------------------------------------------------------------------------

void Connection::StartRead() {
  if (state_ == State::kLingering) {
    socket_.async_read_some(
        asio::buffer(discard_),
        [self = shared_from_this()](std::error_code ec, size_t n) { self->OnRead(ec, n); });
    return;
  }
  auto [p, n] = decoder_->Prepare(state_ == State::kOpen ? kReadBytes : kHandshakeReadBytes);
  socket_.async_read_some(
      asio::buffer(p, n),
      [self = shared_from_this()](std::error_code ec, size_t bytes) { self->OnRead(ec, bytes); });
}

void Connection::OnRead(std::error_code ec, size_t n) {
  if (state_ == State::kClosed) return;
  if (state_ == State::kLingering) {
    // A refused peer: its bytes are dropped; its hang-up (or the linger timer) ends it.
    if (ec) {
      CloseSocket();
      state_ = State::kClosed;
    } else {
      StartRead();
    }
    return;
  }
  if (ec) {
    Fail(SocketError(ec));
    return;
  }
  stats_.bytes_received += n;
  last_rx_ = Clock::now();
  decoder_->Commit(n);
  while (state_ == State::kHandshake || state_ == State::kOpen) {
    auto next = decoder_->Next();
    if (!next.ok()) {
      Fail(prefix_.empty() ? next.status()
                           : next.status().WithContext(prefix_.substr(0, prefix_.size() - 2)));
      return;
    }
    if (!next->has_value()) break;
    ++stats_.frames_received;
    HandleFrame(**next);
  }
  if (state_ != State::kClosed) StartRead();
}

Status Connection::SocketError(std::error_code ec) const {
  const std::string who = prefix_ + PeerName();
  const bool handshake = state_ == State::kHandshake || state_ == State::kConnecting;
  if (ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe) {
    const std::string what =
        ec == asio::error::eof ? " closed the connection" : " reset the connection";
    if (handshake) return Unavailable(who + what + " during the handshake (" + StepName() + ")");
    return Aborted(who + what);
  }
  return Unavailable(who + ": socket error: " + ec.message());
}

void Connection::HandleFrame(std::string_view payload) {
  proto::ChannelFrame f;
  bool parsed;
  {
    // libprotobuf would write its own line to stderr for a string that is not UTF-8: one per
    // connection of an unauthenticated flood, past the listener's rate limit (found by
    // fuzz/proto_messages). The failure is reported below, like every other bad frame.
    google::protobuf::LogSilencer quiet;
    parsed = f.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
  }
  if (!parsed) {
    Fail(ProtocolError(prefix_ + "frame " + std::to_string(decoder_->frames_decoded()) + " from " +
                       peer_address_ + ": not a valid ChannelFrame message"));
    return;
  }
  if (silent_) return;  // playing dead: nothing read is acted on
  if (state_ == State::kOpen) {
    HandleSessionFrame(f);
  } else if (role_ == Role::kConnector) {
    HandleConnectorStep(f, payload);
  } else {
    HandleAcceptorStep(f, payload);
  }
}

Status Connection::CheckHello(const proto::Hello& hello, bool states_identity) const {
  if (hello.protocol_version() != kProtocolVersion) {
    return FailedPrecondition(prefix_ + PeerName() + " speaks channel protocol version " +
                              std::to_string(hello.protocol_version()) + "; this host speaks " +
                              std::to_string(kProtocolVersion));
  }
  if (hello.nonce().size() != kNonceBytes) {
    return ProtocolError(prefix_ + PeerName() + " sent a " + std::to_string(hello.nonce().size()) +
                         "-byte nonce; the protocol requires " + std::to_string(kNonceBytes));
  }
  if (Status s = CheckHelloText(hello); !s.ok()) {
    return ProtocolError(prefix_ + PeerName() + " " + s.message());
  }
  if (!states_identity) return Status::Ok();
  if (Status s = CheckHelloService(hello); !s.ok()) {
    return ProtocolError(prefix_ + PeerName() + " " + s.message());
  }
  return Status::Ok();
}

// --- Handshake: connector ----------------------------------------------------------------

void Connection::HandleConnectorStep(const proto::ChannelFrame& f, std::string_view payload) {
  if (f.has_refusal()) {
    HandleRefusal(f);
    return;
  }
  auto unexpected = [&] {
    Fail(ProtocolError(prefix_ + PeerName() + " sent a " + BodyName(f) + " while " + StepName()));
  };
  switch (step_) {
    case Step::kAwaitChallenge: {
      if (!f.has_hello()) return unexpected();
      if (Status s = CheckHello(f.hello(), /*states_identity=*/false); !s.ok()) return Fail(s);
      peer_nonce_ = f.hello().nonce();
      proto::ChannelFrame auth;
      auth.mutable_auth()->set_mac(HandshakeMac(options_.key, Role::kConnector, own_nonce_,
                                                peer_nonce_, own_hello_frame_, payload));
      QueueFrame(auth);
      step_ = Step::kAwaitAcceptorHello;
      return;
    }
    case Step::kAwaitAcceptorHello: {
      if (!f.has_hello()) return unexpected();
      if (Status s = CheckHello(f.hello(), /*states_identity=*/true); !s.ok()) return Fail(s);
      if (f.hello().nonce() != peer_nonce_) {
        return Fail(ProtocolError(prefix_ + PeerName() +
                                  " changed its nonce in the middle of the handshake"));
      }
      peer_ = IdentityOf(f.hello());
      peer_hello_frame_ = std::string(payload);
      step_ = Step::kAwaitAcceptorAuth;
      return;
    }
    case Step::kAwaitAcceptorAuth: {
      if (!f.has_auth()) return unexpected();
      std::string expected = HandshakeMac(options_.key, Role::kAcceptor, peer_nonce_, own_nonce_,
                                          peer_hello_frame_, own_hello_frame_);
      if (!MacMatches(expected, f.auth().mac())) {
        log_->warn("{}peer {} failed authentication (wrong channel key?)", prefix_, peer_address_);
        return Fail(PermissionDenied(prefix_ + "peer " + peer_address_ +
                                     " failed authentication (wrong channel key?)"));
      }
      authenticated_ = true;
      if (Status s = CompareIdentities(self_, peer_); !s.ok()) {
        return Refuse(proto::Refusal::IDENTITY, s.message(), s);
      }
      step_ = Step::kAwaitWelcome;
      return;
    }
    case Step::kAwaitWelcome:
      if (!f.has_welcome()) return unexpected();
      Open();
      return;
    default:
      return unexpected();
  }
}

void Connection::HandleRefusal(const proto::ChannelFrame& f) {
  const auto& r = f.refusal();
  // The acceptor refuses before it has proved the key: its reason is anybody's text.
  const std::string reason = ft::PrintableText(r.reason(), kMaxRefusalReasonBytes);
  // Identity refusals already start with "vm '...': ".
  const std::string who = (reason.rfind("vm '", 0) == 0 ? "" : prefix_) + PeerName();
  switch (r.code()) {
    case proto::Refusal::AUTHENTICATION:
      log_->warn("{} rejected our authentication (wrong channel key?)", who);
      Fail(PermissionDenied(who + " rejected our authentication (wrong channel key?)"));
      return;
    case proto::Refusal::VERSION:
      Fail(FailedPrecondition(who + " refused the connection: " + reason));
      return;
    default:
      log_->warn("{} refused the connection: {}", who, reason);
      Fail(FailedPrecondition(who + " refused the connection: " + reason));
      return;
  }
}

// --- Handshake: acceptor -----------------------------------------------------------------

void Connection::HandleAcceptorStep(const proto::ChannelFrame& f, std::string_view payload) {
  auto unexpected = [&] {
    Fail(ProtocolError(PeerName() + " sent a " + BodyName(f) + " while " + StepName()));
  };
  switch (step_) {
    case Step::kAwaitHello: {
      if (!f.has_hello()) return unexpected();
      const auto& hello = f.hello();
      if (hello.protocol_version() != kProtocolVersion) {
        Status s = CheckHello(hello, /*states_identity=*/true);
        return Refuse(proto::Refusal::VERSION,
                      "channel protocol version " + std::to_string(hello.protocol_version()) +
                          " is not supported; this host speaks " + std::to_string(kProtocolVersion),
                      s);
      }
      if (Status s = CheckHello(hello, /*states_identity=*/true); !s.ok()) return Fail(s);
      // Nothing the peer says is trusted yet; node and vm only label the log lines.
      peer_ = IdentityOf(hello);
      peer_nonce_ = hello.nonce();
      peer_hello_frame_ = std::string(payload);
      auto nonce = MakeNonce();
      if (!nonce.ok()) return Fail(nonce.status());
      own_nonce_ = std::move(nonce).value();
      // The challenge: version and nonce only, nothing about this host's VMs.
      proto::ChannelFrame challenge;
      challenge.mutable_hello()->set_protocol_version(kProtocolVersion);
      challenge.mutable_hello()->set_nonce(own_nonce_);
      own_hello_frame_ = challenge.SerializeAsString();
      QueuePayload(own_hello_frame_, 0);
      step_ = Step::kAwaitAuth;
      return;
    }
    case Step::kAwaitAuth: {
      if (!f.has_auth()) return unexpected();
      std::string expected = HandshakeMac(options_.key, Role::kConnector, peer_nonce_, own_nonce_,
                                          peer_hello_frame_, own_hello_frame_);
      if (!MacMatches(expected, f.auth().mac())) {
        // The listener logs the refusal with the address.
        return Refuse(proto::Refusal::AUTHENTICATION, "authentication failed",
                      PermissionDenied("peer " + peer_address_ +
                                       " failed authentication (wrong channel key?)"));
      }
      // Authenticated: now the peer may learn what this host thinks of the VM.
      authenticated_ = true;
      prefix_ =
          peer_.service == Service::kPeerControl ? "peer control: " : "vm '" + peer_.vm + "': ";
      Result<Identity> mine = expect_(peer_);
      if (!mine.ok()) {
        Status s = FailedPrecondition(mine.status().message());
        return Refuse(proto::Refusal::IDENTITY, s.message(), s);
      }
      self_ = std::move(mine).value();
      if (Status s = CompareIdentities(self_, peer_); !s.ok()) {
        return Refuse(proto::Refusal::IDENTITY, s.message(), s);
      }
      proto::ChannelFrame hello;
      FillHello(self_, own_nonce_, hello.mutable_hello());
      std::string hello_frame = hello.SerializeAsString();
      proto::ChannelFrame auth;
      auth.mutable_auth()->set_mac(HandshakeMac(options_.key, Role::kAcceptor, own_nonce_,
                                                peer_nonce_, hello_frame, peer_hello_frame_));
      QueuePayload(std::move(hello_frame), 0);
      QueueFrame(auth);
      proto::ChannelFrame welcome;
      welcome.mutable_welcome();
      QueueFrame(welcome);
      Open();
      return;
    }
    default:
      return unexpected();
  }
}

// --- Outcomes ----------------------------------------------------------------------------

void Connection::Open() {
  state_ = State::kOpen;
  handshake_timer_.cancel();
  decoder_->SetMaxFrameBytes(options_.max_frame_bytes);
  ReleaseHandshakeSlot();
  last_rx_ = Clock::now();
  log_->info("{}channel open with peer '{}' ({}) as {}, epoch {}", prefix_, peer_.node,
             peer_address_, role_ == Role::kConnector ? "connector" : "acceptor", self_.epoch);
  ArmHeartbeat();
  ArmWatchdog();
  FinishHandshake(Status::Ok());
}

void Connection::Refuse(int code, const std::string& reason, Status local) {
  proto::ChannelFrame f;
  f.mutable_refusal()->set_code(static_cast<proto::Refusal::Code>(code));
  f.mutable_refusal()->set_reason(reason);
  QueueFrame(f);
  // Stay for the refusal to be written and read: closing with unread bytes would reset the
  // connection and could destroy the refusal before the peer reads it.
  state_ = State::kLingering;
  handshake_timer_.expires_after(std::min(options_.handshake_timeout, kLingerAfterRefusal));
  handshake_timer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (ec || self->state_ != State::kLingering) return;
    self->CloseSocket();
    self->state_ = State::kClosed;
  });
  FinishHandshake(std::move(local));
}

void Connection::Fail(Status s) {
  const State was = state_;
  state_ = State::kClosed;
  CloseSocket();
  if (was == State::kConnecting || was == State::kHandshake) {
    FinishHandshake(std::move(s));
  } else if (was == State::kOpen) {
    if (s.code() == StatusCode::kAborted) {
      log_->info("{}", s.message());
    } else {
      log_->warn("channel to {} closed: {}", PeerName(), s.message());
    }
    on_log_ = nullptr;
    on_ack_ = nullptr;
    held_.clear();
    if (on_closed_) {
      auto cb = std::move(on_closed_);
      on_closed_ = nullptr;
      cb(std::move(s));
    } else {
      undelivered_close_ = std::move(s);
    }
  }
}

void Connection::FinishHandshake(Status s) {
  if (!handshake_done_) return;
  HandshakeDone done = std::move(handshake_done_);
  handshake_done_ = nullptr;
  done(shared_from_this(), std::move(s));
}

void Connection::CloseSocket() {
  std::error_code ignored;
  resolver_.cancel();
  handshake_timer_.cancel();
  heartbeat_timer_.cancel();
  watchdog_timer_.cancel();
  if (socket_.is_open()) {
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }
  ReleaseHandshakeSlot();
}

void Connection::Close() {
  if (state_ == State::kClosed) return;
  if (state_ == State::kOpen) {
    log_->info("{}closing channel to {}", prefix_, PeerName());
  }
  state_ = State::kClosed;
  handshake_done_ = nullptr;
  on_log_ = nullptr;
  on_ack_ = nullptr;
  on_closed_ = nullptr;
  held_.clear();
  CloseSocket();
  // Queued frames stay allocated until the cancelled write completes: the kernel may still
  // reference its buffers until then.
}

// --- Writing -----------------------------------------------------------------------------

void Connection::QueueFrame(const proto::ChannelFrame& f, uint64_t log_bytes) {
  QueuePayload(f.SerializeAsString(), log_bytes);
}

void Connection::QueuePayload(std::string payload, uint64_t log_bytes) {
  if (silent_) return;  // playing dead: nothing leaves
  OutFrame& out = queue_.emplace_back();
  out.header = EncodeFrameHeader(payload);
  out.payload = std::move(payload);
  out.log_bytes = log_bytes;
  stats_.queued_bytes += kFrameHeaderBytes + out.payload.size();
  if (!writing_) StartWrite();
}

void Connection::StartWrite() {
  write_buffers_.clear();
  size_t bytes = 0;
  frames_in_flight_ = 0;
  for (const OutFrame& f : queue_) {
    if (frames_in_flight_ == kMaxGatherFrames || bytes >= kMaxGatherBytes) break;
    write_buffers_.emplace_back(f.header.data(), f.header.size());
    write_buffers_.emplace_back(f.payload.data(), f.payload.size());
    bytes += f.header.size() + f.payload.size();
    ++frames_in_flight_;
  }
  writing_ = true;
  asio::async_write(socket_, write_buffers_,
                    [self = shared_from_this()](std::error_code ec, size_t) { self->OnWrite(ec); });
}

void Connection::OnWrite(std::error_code ec) {
  writing_ = false;
  if (state_ == State::kClosed) return;
  if (ec) {
    if (state_ == State::kLingering) {
      CloseSocket();
      state_ = State::kClosed;
      return;
    }
    Fail(SocketError(ec));
    return;
  }
  for (size_t i = 0; i < frames_in_flight_; ++i) {
    const OutFrame& f = queue_.front();
    const size_t n = f.header.size() + f.payload.size();
    stats_.frames_sent++;
    stats_.bytes_sent += n;
    stats_.log_bytes_sent += f.log_bytes;
    stats_.queued_bytes -= n;
    queue_.pop_front();
  }
  frames_in_flight_ = 0;
  if (!queue_.empty()) {
    StartWrite();
  } else if (state_ == State::kLingering) {
    std::error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  }
}

// --- Session -----------------------------------------------------------------------------

void Connection::SendLog(uint64_t offset, std::string_view data) {
  if (state_ != State::kOpen || silent_) {
    log_->debug("{}dropping {} log bytes at offset {}: channel is not open", prefix_, data.size(),
                offset);
    return;
  }
  if (offset != next_send_offset_) {
    log_->error("{}SendLog at offset {} but the stream so far ends at {}; the peer will refuse it",
                prefix_, offset, next_send_offset_);
  }
  const size_t max_piece = std::min<size_t>(kMaxLogFrameData, options_.max_frame_bytes > 1024
                                                                  ? options_.max_frame_bytes - 1024
                                                                  : options_.max_frame_bytes / 2);
  const uint64_t now = MonoNs();
  size_t done = 0;
  while (done < data.size()) {
    const size_t n = std::min(max_piece, data.size() - done);
    proto::ChannelFrame f;
    proto::LogChunk* chunk = f.mutable_log();
    chunk->set_offset(offset + done);
    chunk->set_data(data.data() + done, n);
    chunk->set_sent_mono_ns(now);
    QueueFrame(f, n);
    done += n;
  }
  next_send_offset_ = offset + data.size();
}

void Connection::SendAck(uint64_t received_offset, uint64_t replayed_icount) {
  if (state_ != State::kOpen || silent_) return;
  proto::ChannelFrame f;
  f.mutable_ack()->set_received_offset(received_offset);
  f.mutable_ack()->set_replayed_icount(replayed_icount);
  QueueFrame(f);
}

void Connection::HandleSessionFrame(const proto::ChannelFrame& f) {
  switch (f.body_case()) {
    case proto::ChannelFrame::kLog: {
      const auto& chunk = f.log();
      if (chunk.offset() != next_log_offset_) {
        return Fail(ProtocolError(
            prefix_ + "log chunk at offset " + std::to_string(chunk.offset()) + " but expected " +
            std::to_string(next_log_offset_) + " (out of order or lost); from " + PeerName()));
      }
      next_log_offset_ += chunk.data().size();
      stats_.log_bytes_received += chunk.data().size();
      DeliverLog(chunk.offset(), chunk.data());
      return;
    }
    case proto::ChannelFrame::kAck: {
      const auto& ack = f.ack();
      if (ack.received_offset() < last_ack_offset_ || ack.replayed_icount() < last_ack_icount_) {
        return Fail(ProtocolError(prefix_ + "ack went backwards: offset " +
                                  std::to_string(ack.received_offset()) + " icount " +
                                  std::to_string(ack.replayed_icount()) + " after offset " +
                                  std::to_string(last_ack_offset_) + " icount " +
                                  std::to_string(last_ack_icount_) + "; from " + PeerName()));
      }
      if (ack.received_offset() > next_send_offset_) {
        return Fail(ProtocolError(prefix_ + PeerName() + " acked log up to offset " +
                                  std::to_string(ack.received_offset()) + " but only " +
                                  std::to_string(next_send_offset_) + " bytes were sent"));
      }
      last_ack_offset_ = ack.received_offset();
      last_ack_icount_ = ack.replayed_icount();
      DeliverAck(ack.received_offset(), ack.replayed_icount());
      return;
    }
    case proto::ChannelFrame::kHeartbeat: {
      const auto& hb = f.heartbeat();
      const uint64_t now = MonoNs();
      ++stats_.heartbeats_received;
      peer_heartbeat_ns_ = hb.sent_mono_ns();
      peer_heartbeat_at_ns_ = now;
      if (hb.echo_mono_ns() != 0 && now > hb.echo_mono_ns() + hb.echo_held_ns()) {
        stats_.last_rtt_us = (now - hb.echo_mono_ns() - hb.echo_held_ns()) / 1000;
        if (stats_.last_rtt_us == 0) stats_.last_rtt_us = 1;
      }
      return;
    }
    case proto::ChannelFrame::kMessage:
      if (peer_.service != Service::kPeerControl) {
        return Fail(
            ProtocolError(prefix_ + PeerName() + " sent a peer message on a VM's log session"));
      }
      DeliverMessage(f.message().payload());
      return;
    case proto::ChannelFrame::kRefusal:
      return Fail(
          FailedPrecondition(prefix_ + PeerName() + " refused the session: " +
                             ft::PrintableText(f.refusal().reason(), kMaxRefusalReasonBytes)));
    default:
      return Fail(
          ProtocolError(prefix_ + PeerName() + " sent a " + BodyName(f) + " after the handshake"));
  }
}

void Connection::DeliverLog(uint64_t offset, std::string_view data) {
  if (on_log_ && held_.empty()) {
    Invoke(
        on_log_, [this] { return state_ == State::kOpen; }, offset, data);
    return;
  }
  held_.emplace_back(HeldLog{offset, std::string(data)});
}

void Connection::DeliverAck(uint64_t received_offset, uint64_t replayed_icount) {
  if (on_ack_ && held_.empty()) {
    Invoke(
        on_ack_, [this] { return state_ == State::kOpen; }, received_offset, replayed_icount);
    return;
  }
  held_.emplace_back(HeldAck{received_offset, replayed_icount});
}

void Connection::DeliverMessage(std::string_view payload) {
  if (on_message_ && held_.empty()) {
    Invoke(
        on_message_, [this] { return state_ == State::kOpen; }, payload);
    return;
  }
  held_.emplace_back(HeldMessage{std::string(payload)});
}

void Connection::SendMessage(std::string_view payload) {
  if (state_ != State::kOpen || silent_) return;
  proto::ChannelFrame f;
  f.mutable_message()->set_payload(payload.data(), payload.size());
  QueueFrame(f);
}

void Connection::OnMessage(std::function<void(std::string_view)> cb) {
  on_message_ = std::move(cb);
  ScheduleFlushHeld();
}

void Connection::GoSilent() {
  if (state_ != State::kOpen || silent_) return;
  log_->info("{}going silent towards {} (a drill: the peer must find this host dead)", prefix_,
             PeerName());
  silent_ = true;
  heartbeat_timer_.cancel();
  watchdog_timer_.cancel();
  on_log_ = nullptr;
  on_ack_ = nullptr;
  on_message_ = nullptr;
  on_closed_ = nullptr;
  held_.clear();
}

void Connection::OnLog(std::function<void(uint64_t, std::string_view)> cb) {
  on_log_ = std::move(cb);
  ScheduleFlushHeld();
}

void Connection::OnAck(std::function<void(uint64_t, uint64_t)> cb) {
  on_ack_ = std::move(cb);
  ScheduleFlushHeld();
}

void Connection::OnClosed(std::function<void(Status)> cb) {
  on_closed_ = std::move(cb);
  if (undelivered_close_ && on_closed_) {
    // The session ended before anyone listened: tell them now, but not from inside this call.
    asio::post(io_, [self = shared_from_this()] {
      if (!self->undelivered_close_ || !self->on_closed_) return;
      auto closed = std::move(self->on_closed_);
      self->on_closed_ = nullptr;
      Status s = std::move(*self->undelivered_close_);
      self->undelivered_close_.reset();
      closed(std::move(s));
    });
  }
}

void Connection::ScheduleFlushHeld() {
  if (held_.empty() || flush_scheduled_ || state_ != State::kOpen) return;
  flush_scheduled_ = true;
  asio::post(io_, [self = shared_from_this()] {
    self->flush_scheduled_ = false;
    self->FlushHeld();
  });
}

void Connection::FlushHeld() {
  while (state_ == State::kOpen && !held_.empty()) {
    auto item = std::move(held_.front());
    if (auto* l = std::get_if<HeldLog>(&item)) {
      if (!on_log_) return;
      held_.pop_front();
      Invoke(
          on_log_, [this] { return state_ == State::kOpen; }, l->offset, std::string_view(l->data));
    } else if (auto* a = std::get_if<HeldAck>(&item)) {
      if (!on_ack_) return;
      held_.pop_front();
      Invoke(
          on_ack_, [this] { return state_ == State::kOpen; }, a->received_offset,
          a->replayed_icount);
    } else {
      auto& m = std::get<HeldMessage>(item);
      if (!on_message_) return;
      held_.pop_front();
      Invoke(
          on_message_, [this] { return state_ == State::kOpen; }, std::string_view(m.payload));
    }
  }
}

// --- Heartbeats --------------------------------------------------------------------------

void Connection::ArmHeartbeat() {
  heartbeat_timer_.expires_after(options_.heartbeat_interval);
  heartbeat_timer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (ec || self->state_ != State::kOpen || self->silent_) return;
    self->SendHeartbeat();
    self->ArmHeartbeat();
  });
}

void Connection::SendHeartbeat() {
  proto::ChannelFrame f;
  proto::Heartbeat* hb = f.mutable_heartbeat();
  const uint64_t now = MonoNs();
  hb->set_sent_mono_ns(now);
  if (peer_heartbeat_ns_ != 0) {
    hb->set_echo_mono_ns(peer_heartbeat_ns_);
    hb->set_echo_held_ns(now - peer_heartbeat_at_ns_);
    peer_heartbeat_ns_ = 0;
  }
  QueueFrame(f);
}

void Connection::ArmWatchdog() {
  watchdog_timer_.expires_at(last_rx_ + options_.heartbeat_timeout);
  watchdog_timer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (ec || self->state_ != State::kOpen || self->silent_) return;
    if (Clock::now() - self->last_rx_ >= self->options_.heartbeat_timeout) {
      self->Fail(Timeout(self->prefix_ + "no frame from " + self->PeerName() + " for " +
                         Ms(self->options_.heartbeat_timeout)));
      return;
    }
    self->ArmWatchdog();
  });
}

// --- Connect -----------------------------------------------------------------------------

void Connect(asio::io_context& io, const std::string& host, uint16_t port, Identity self,
             Options options, SessionHandler handler) {
  if (options.key.empty()) {
    asio::post(io, [handler = std::move(handler), vm = self.vm] {
      handler(FailedPrecondition("vm '" + vm +
                                 "': no channel key configured: refusing to send or accept log"));
    });
    return;
  }
  std::string address = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  auto conn = std::make_shared<Connection>(io, Role::kConnector, std::move(options),
                                           address + ":" + std::to_string(port));
  conn->StartConnect(host, port, std::move(self),
                     [handler = std::move(handler)](std::shared_ptr<Connection> c, Status s) {
                       if (!s.ok()) {
                         handler(std::move(s));
                         return;
                       }
                       handler(MakeSession(std::move(c)));
                     });
}

}  // namespace ft::channel
