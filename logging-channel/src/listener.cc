// The accepting side of the logging channel: accepts forever, runs one handshake per socket,
// hands authenticated and matching peers to the caller and logs the rest.
#include <map>
#include <utility>

#include "connection.h"
#include "ft/log.h"

namespace ft::channel {
namespace {

// After a failed accept (e.g. out of file descriptors), wait before the next try.
constexpr std::chrono::milliseconds kAcceptRetry{100};

class ListenerCore : public std::enable_shared_from_this<ListenerCore> {
 public:
  ListenerCore(asio::io_context& io, Options options, Listener::ExpectFn expect,
               std::function<void(std::shared_ptr<Session>)> on_session)
      : io_(io),
        acceptor_(io),
        retry_timer_(io),
        options_(std::move(options)),
        expect_(std::move(expect)),
        on_session_(std::move(on_session)),
        log_(Logger("channel")) {}

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
          if (ec) {
            self->log_->warn("channel listener on port {}: accept failed: {}; retrying",
                             self->port_, ec.message());
            self->retry_timer_.expires_after(kAcceptRetry);
            self->retry_timer_.async_wait([self](std::error_code tec) {
              if (!tec && !self->closed_) self->Accept();
            });
            return;
          }
          self->Handshake(std::move(socket));
          self->Accept();
        });
  }

  void Handshake(asio::ip::tcp::socket socket) {
    std::error_code ec;
    auto remote = socket.remote_endpoint(ec);
    std::string address = ec ? "unknown peer" : EndpointString(remote);
    log_->debug("channel connection from {}", address);
    auto conn = std::make_shared<Connection>(io_, Role::kAcceptor, options_, address);
    pending_.emplace(conn.get(), conn);
    std::weak_ptr<ListenerCore> weak = shared_from_this();
    conn->StartAccept(std::move(socket), expect_,
                      [weak, address](std::shared_ptr<Connection> c, Status s) {
                        auto self = weak.lock();
                        if (!self) return;
                        self->pending_.erase(c.get());
                        if (self->closed_) return;
                        if (s.ok()) {
                          if (self->on_session_) self->on_session_(MakeSession(std::move(c)));
                          return;
                        }
                        self->log_->warn("refused channel peer {}: {}", address, s.message());
                        if (self->on_refused_) self->on_refused_(address, s);
                      });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    std::error_code ignored;
    acceptor_.close(ignored);
    retry_timer_.cancel();
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [_, conn] : pending) conn->Close();
  }

  uint16_t port() const { return port_; }
  void SetOnRefused(Listener::RefusedFn cb) { on_refused_ = std::move(cb); }

 private:
  asio::io_context& io_;
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer retry_timer_;
  Options options_;
  Listener::ExpectFn expect_;
  std::function<void(std::shared_ptr<Session>)> on_session_;
  Listener::RefusedFn on_refused_;
  std::shared_ptr<spdlog::logger> log_;
  uint16_t port_ = 0;
  bool closed_ = false;
  std::map<Connection*, std::shared_ptr<Connection>> pending_;  // handshakes in progress
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
