// The accepting side of the logging channel: accepts forever, runs one handshake per socket
// within the caps on handshakes in progress, hands authenticated and matching peers to the
// caller and logs the rest (those that never authenticated, once per interval).
#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "connection.h"
#include "ft/log.h"
#include "preauth.h"

namespace ft::channel {
namespace {

// After a failed accept (e.g. out of file descriptors) wait before the next try, doubling
// up to the maximum while it keeps failing.
constexpr std::chrono::milliseconds kAcceptRetryMin{10};
constexpr std::chrono::milliseconds kAcceptRetryMax{1000};

// A kind of drop for the summary line ("12 timed out in the handshake").
std::string DropKind(const Status& s) {
  switch (s.code()) {
    case StatusCode::kTimeout:
      return "timed out in the handshake";
    case StatusCode::kPermissionDenied:
      return "failed authentication";
    case StatusCode::kProtocol:
    case StatusCode::kDataLoss:
      return "sent a bad frame";
    case StatusCode::kFailedPrecondition:
      return "spoke another protocol version";
    default:
      return "hung up";
  }
}

class ListenerCore : public std::enable_shared_from_this<ListenerCore> {
 public:
  ListenerCore(asio::io_context& io, Options options, Listener::ExpectFn expect,
               std::function<void(std::shared_ptr<Session>)> on_session)
      : io_(io),
        acceptor_(io),
        retry_timer_(io),
        report_timer_(io),
        options_(std::move(options)),
        expect_(std::move(expect)),
        on_session_(std::move(on_session)),
        log_(Logger("channel")),
        slots_({options_.max_handshakes, options_.max_handshakes_per_address}),
        dropped_(options_.dropped_peer_log_interval) {}

  Status Bind(const std::string& host, uint16_t port) {
    const std::string where = host + ":" + std::to_string(port);
    std::error_code ec;
    asio::ip::address address = asio::ip::make_address(host, ec);
    if (ec) {
      asio::ip::tcp::resolver resolver(io_);
      auto results = resolver.resolve(host, std::to_string(port), ec);
      if (ec || results.empty()) {
        return Unavailable("channel listener: cannot resolve '" + host + "': " + ec.message());
      }
      address = results.begin()->endpoint().address();
    }
    asio::ip::tcp::endpoint ep(address, port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Unavailable("channel listener: cannot listen on " + where + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint(ec).port();
    log_->info("listening for the logging channel on {}", EndpointString({address, port_}));
    return Status::Ok();
  }

  void Accept() {
    acceptor_.async_accept(
        [self = shared_from_this()](std::error_code ec, asio::ip::tcp::socket socket) {
          if (self->closed_) return;
          if (ec) return self->RetryAccept(ec);
          if (self->accept_failures_ > 0) {
            self->log_->info("channel listener on port {}: accepting again after {} failed tries",
                             self->port_, self->accept_failures_);
          }
          self->accept_failures_ = 0;
          self->retry_delay_ = kAcceptRetryMin;
          self->Admit(std::move(socket));
          self->Accept();
        });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    std::error_code ignored;
    acceptor_.close(ignored);
    retry_timer_.cancel();
    report_timer_.cancel();
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [_, weak] : pending) {
      if (auto conn = weak.lock()) conn->Close();
    }
  }

  uint16_t port() const { return port_; }
  void SetOnRefused(Listener::RefusedFn cb) { on_refused_ = std::move(cb); }

 private:
  // Out of file descriptors (EMFILE, ENFILE), buffers, or a connection that went away before
  // it was accepted: none of it is for good. Back off and try again; say so once per interval.
  void RetryAccept(std::error_code ec) {
    ++accept_failures_;
    const auto now = std::chrono::steady_clock::now();
    if (!last_accept_warning_ ||
        now - *last_accept_warning_ >= options_.dropped_peer_log_interval) {
      last_accept_warning_ = now;
      log_->warn(
          "channel listener on port {}: accept failed: {}; retrying in up to {} ms ({} "
          "failed tries so far)",
          port_, ec.message(), kAcceptRetryMax.count(), accept_failures_);
    }
    retry_timer_.expires_after(retry_delay_);
    retry_delay_ = std::min(retry_delay_ * 2, kAcceptRetryMax);
    retry_timer_.async_wait([self = shared_from_this()](std::error_code tec) {
      if (!tec && !self->closed_) self->Accept();
    });
  }

  void Admit(asio::ip::tcp::socket socket) {
    std::error_code ec;
    auto remote = socket.remote_endpoint(ec);
    if (ec) return;  // gone already
    const std::string address = EndpointString(remote);
    const uint64_t id = ++next_id_;
    auto decision = slots_.Admit(id, remote.address().to_string());
    if (decision.evicted) {
      auto it = pending_.find(*decision.evicted);
      if (it != pending_.end()) {
        auto evicted = it->second.lock();
        pending_.erase(it);
        if (evicted) {
          NoteDropped("evicted for a peer from a less busy address",
                      "dropped channel peer " + evicted->peer_address() +
                          " in the handshake: handshake slots are full (" +
                          std::to_string(options_.max_handshakes) +
                          ") and its address holds the most");
          evicted->Close();
        }
      }
    }
    if (decision.verdict != HandshakeSlots::Verdict::kAdmitted) {
      const bool full = decision.verdict == HandshakeSlots::Verdict::kFull;
      Status why = Unavailable(
          full
              ? "refused channel peer " + address + ": " + std::to_string(options_.max_handshakes) +
                    " handshakes in progress, the most this listener runs at once"
              : "refused channel peer " + address + ": " +
                    std::to_string(options_.max_handshakes_per_address) +
                    " handshakes in progress from its address, the most from one address");
      NoteDropped(full ? "over the cap on handshakes" : "over the cap per address", why.message());
      socket.close(ec);
      if (on_refused_) on_refused_(address, why);
      return;
    }
    log_->debug("channel connection from {}", address);
    auto conn = std::make_shared<Connection>(io_, Role::kAcceptor, options_, address);
    pending_.emplace(id, conn);
    std::weak_ptr<ListenerCore> weak = shared_from_this();
    conn->HoldHandshakeSlot([weak, id] {
      if (auto self = weak.lock()) {
        self->slots_.Release(id);
        self->pending_.erase(id);
      }
    });
    conn->StartAccept(
        std::move(socket), expect_, [weak, address](std::shared_ptr<Connection> c, Status s) {
          auto self = weak.lock();
          if (!self || self->closed_) return;
          if (s.ok()) {
            if (self->on_session_) self->on_session_(MakeSession(std::move(c)));
            return;
          }
          // A peer that proved the key is told and logged every time; anybody
          // else is counted (a flood must not flood the log too).
          if (c->authenticated()) {
            self->log_->warn("refused channel peer {}: {}", address, s.message());
          } else {
            self->NoteDropped(DropKind(s), "refused channel peer " + address + ": " + s.message());
          }
          if (self->on_refused_) self->on_refused_(address, s);
        });
  }

  void NoteDropped(const std::string& kind, const std::string& line) {
    auto noted = dropped_.Note(std::chrono::steady_clock::now(), kind, line);
    if (noted.line_now) log_->warn("{}", *noted.line_now);
    if (noted.summary_due) {
      report_timer_.expires_at(*noted.summary_due);
      report_timer_.async_wait(
          [weak = std::weak_ptr<ListenerCore>(shared_from_this())](std::error_code ec) {
            auto self = weak.lock();
            if (ec || !self || self->closed_) return;
            if (auto summary = self->dropped_.Summary(std::chrono::steady_clock::now())) {
              self->log_->warn("channel listener on port {}: {}", self->port_, *summary);
            }
          });
    }
  }

  asio::io_context& io_;
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer retry_timer_;
  asio::steady_timer report_timer_;
  Options options_;
  Listener::ExpectFn expect_;
  std::function<void(std::shared_ptr<Session>)> on_session_;
  Listener::RefusedFn on_refused_;
  std::shared_ptr<spdlog::logger> log_;
  uint16_t port_ = 0;
  bool closed_ = false;
  // Accept failures in a row, and the wait before the next try.
  uint64_t accept_failures_ = 0;
  std::chrono::milliseconds retry_delay_ = kAcceptRetryMin;
  std::optional<std::chrono::steady_clock::time_point> last_accept_warning_;
  // Connections holding a handshake slot (in the handshake, or lingering after a refusal).
  HandshakeSlots slots_;
  std::map<uint64_t, std::weak_ptr<Connection>> pending_;
  uint64_t next_id_ = 0;
  DroppedPeerReport dropped_;
};

class ListenerImpl final : public Listener {
 public:
  explicit ListenerImpl(std::shared_ptr<ListenerCore> core) : core_(std::move(core)) {}
  ~ListenerImpl() override { core_->Close(); }
  uint16_t port() const override { return core_->port(); }
  void Close() override { core_->Close(); }
  void OnRefused(RefusedFn cb) override { core_->SetOnRefused(std::move(cb)); }

 private:
  std::shared_ptr<ListenerCore> core_;
};

}  // namespace

Result<std::unique_ptr<Listener>> Listener::Create(
    asio::io_context& io, const std::string& host, uint16_t port, Options options, ExpectFn expect,
    std::function<void(std::shared_ptr<Session>)> on_session) {
  if (options.key.empty()) {
    return FailedPrecondition("no channel key configured: refusing to send or accept log");
  }
  auto core = std::make_shared<ListenerCore>(io, std::move(options), std::move(expect),
                                             std::move(on_session));
  FT_RETURN_IF_ERROR(core->Bind(host, port));
  core->Accept();
  return std::unique_ptr<Listener>(std::make_unique<ListenerImpl>(std::move(core)));
}

}  // namespace ft::channel
