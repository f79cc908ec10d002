#include "ft/daemon/control_socket.h"

#include <sys/stat.h>

#include <algorithm>
#include <asio.hpp>
#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "ft/log.h"

namespace ft::daemon {
namespace {

using asio::local::stream_protocol;
// Reading the request is bounded tightly; answering is bounded by the handler (a drill or a
// planned failover takes seconds) and, as a last resort, by kAnswerTimeout.
constexpr auto kSessionTimeout = std::chrono::seconds(5);
constexpr auto kAnswerTimeout = std::chrono::seconds(3600);  // enable copies whole disks
// A failed accept (out of descriptors: EMFILE, ENFILE) is retried after a wait that doubles
// up to the maximum; a warning at most once per interval says so.
constexpr auto kAcceptRetryMin = std::chrono::milliseconds(10);
constexpr auto kAcceptRetryMax = std::chrono::milliseconds(1000);
constexpr auto kAcceptWarningInterval = std::chrono::seconds(10);

uint32_t ReadBigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// One connection: read a framed request, answer it, close. Bounded by a timer.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(stream_protocol::socket socket, ControlServer::Handler handler)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), handler_(handler) {}

  void Run() {
    auto self = shared_from_this();
    timer_.expires_after(kSessionTimeout);
    timer_.async_wait([self](const std::error_code& ec) {
      if (!ec) self->socket_.close();
    });
    asio::async_read(socket_, asio::buffer(header_), [self](const std::error_code& ec, size_t) {
      if (ec) return self->Done();
      auto length =
          ParseControlFrameLength(std::string_view(reinterpret_cast<char*>(self->header_), 4));
      if (!length.ok()) {
        Logger("ctl")->warn("control request refused: {}", length.status().message());
        return self->Done();
      }
      self->body_.resize(*length);
      asio::async_read(
          self->socket_, asio::buffer(self->body_), [self](const std::error_code& ec2, size_t) {
            if (ec2) return self->Done();
            self->timer_.expires_after(kAnswerTimeout);
            self->timer_.async_wait([self](const std::error_code& ec3) {
              if (!ec3) self->socket_.close();
            });
            self->handler_(self->body_, [self](std::string reply) {
              if (!self->socket_.is_open()) return;  // timed out: ftctl has given up
              self->reply_ = FrameControlMessage(reply);
              asio::async_write(self->socket_, asio::buffer(self->reply_),
                                [self](const std::error_code&, size_t) { self->Done(); });
            });
          });
    });
  }

 private:
  void Done() {
    timer_.cancel();
    std::error_code ignored;
    socket_.close(ignored);
  }
  stream_protocol::socket socket_;
  asio::steady_timer timer_;
  ControlServer::Handler handler_;  // a copy: a session may outlive the server
  unsigned char header_[4] = {};
  std::string body_;
  std::string reply_;
};

}  // namespace

std::string FrameControlMessage(const std::string& payload) {
  std::string out(4, '\0');
  auto n = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((n >> (24 - 8 * i)) & 0xff);
  return out + payload;
}

Result<uint32_t> ParseControlFrameLength(std::string_view header) {
  if (header.size() != 4) return InvalidArgument("control frame header must be 4 bytes");
  uint32_t n = ReadBigEndian32(reinterpret_cast<const unsigned char*>(header.data()));
  if (n > kMaxControlMessage) {
    return InvalidArgument(
        fmt::format("control message of {} bytes exceeds the limit of {}", n, kMaxControlMessage));
  }
  return n;
}

Result<std::string> CallControlSocket(const std::string& socket_path, const std::string& request,
                                      std::chrono::milliseconds timeout) {
  asio::io_context io;
  stream_protocol::socket socket(io);
  std::error_code ec;
  socket.connect(stream_protocol::endpoint(socket_path), ec);
  if (ec) {
    return Unavailable(
        fmt::format("cannot reach ftd at '{}': {} (is ftd running?)", socket_path, ec.message()));
  }
  std::string frame = FrameControlMessage(request);
  unsigned char header[4];
  std::string body;
  Status result =
      Timeout(fmt::format("ftd at '{}' did not answer within {} ms", socket_path, timeout.count()));
  asio::async_write(socket, asio::buffer(frame), [&](const std::error_code& e, size_t) {
    if (e) {
      result = Unavailable(fmt::format("writing to '{}': {}", socket_path, e.message()));
      return;
    }
    asio::async_read(socket, asio::buffer(header), [&](const std::error_code& e2, size_t) {
      if (e2) {
        result = Aborted(
            fmt::format("ftd closed '{}' without an answer: {}", socket_path, e2.message()));
        return;
      }
      auto length = ParseControlFrameLength(std::string_view(reinterpret_cast<char*>(header), 4));
      if (!length.ok()) {
        result = length.status();
        return;
      }
      body.resize(*length);
      asio::async_read(socket, asio::buffer(body), [&](const std::error_code& e3, size_t) {
        result = e3 ? Aborted(fmt::format("reading from '{}': {}", socket_path, e3.message()))
                    : Status::Ok();
      });
    });
  });
  io.run_for(timeout);
  if (!result.ok()) return result;
  return body;
}

struct ControlServer::Impl {
  Impl(asio::io_context& io, std::string p, Handler h)
      : acceptor(io), retry_timer(io), path(std::move(p)), handler(std::move(h)) {}
  stream_protocol::acceptor acceptor;
  asio::steady_timer retry_timer;
  std::string path;
  Handler handler;
  bool started = false;
  uint64_t accept_failures = 0;  // in a row
  std::chrono::milliseconds retry_delay = kAcceptRetryMin;
  std::optional<std::chrono::steady_clock::time_point> last_warning;

  void Accept(std::shared_ptr<Impl> self) {
    acceptor.async_accept([self](const std::error_code& ec, stream_protocol::socket socket) {
      if (!self->started) return;  // stopped
      if (ec) return self->RetryAccept(self, ec);
      if (self->accept_failures > 0) {
        Logger("ctl")->info("control socket '{}': accepting again after {} failed tries",
                            self->path, self->accept_failures);
      }
      self->accept_failures = 0;
      self->retry_delay = kAcceptRetryMin;
      std::make_shared<Session>(std::move(socket), self->handler)->Run();
      self->Accept(self);
    });
  }

  // Not accepting for good would leave ftd running VMs that ftctl can no longer reach.
  void RetryAccept(std::shared_ptr<Impl> self, const std::error_code& ec) {
    ++accept_failures;
    const auto now = std::chrono::steady_clock::now();
    if (!last_warning || now - *last_warning >= kAcceptWarningInterval) {
      last_warning = now;
      Logger("ctl")->warn(
          "control socket '{}': accept failed: {}; retrying in up to {} ms ({} failed tries so "
          "far)",
          path, ec.message(), kAcceptRetryMax.count(), accept_failures);
    }
    retry_timer.expires_after(retry_delay);
    retry_delay = std::min(retry_delay * 2, kAcceptRetryMax);
    retry_timer.async_wait([self](const std::error_code& tec) {
      if (!tec && self->started) self->Accept(self);
    });
  }
};

ControlServer::ControlServer(asio::io_context& io, std::string socket_path, Handler handler)
    : impl_(std::make_shared<Impl>(io, std::move(socket_path), std::move(handler))) {}

ControlServer::~ControlServer() { Stop(); }

Status ControlServer::Start() {
  // A socket file nobody answers on is left from a daemon that died: replace it. One that
  // answers belongs to a running ftd: refuse rather than steal it.
  std::error_code ec;
  if (std::filesystem::exists(impl_->path, ec)) {
    asio::io_context probe_io;
    stream_protocol::socket probe(probe_io);
    probe.connect(stream_protocol::endpoint(impl_->path), ec);
    if (!ec) {
      return FailedPrecondition(
          fmt::format("another ftd is already listening on control socket '{}'", impl_->path));
    }
    std::filesystem::remove(impl_->path, ec);
  }
  impl_->acceptor.open(stream_protocol(), ec);
  if (!ec) impl_->acceptor.bind(stream_protocol::endpoint(impl_->path), ec);
  if (!ec) ::chmod(impl_->path.c_str(), 0600);  // root-only: ftctl runs as root
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Unavailable(
        fmt::format("cannot listen on control socket '{}': {}", impl_->path, ec.message()));
  }
  impl_->started = true;
  impl_->Accept(impl_);
  return Status::Ok();
}

void ControlServer::Stop() {
  if (!impl_->started) return;
  impl_->started = false;
  std::error_code ec;
  impl_->acceptor.close(ec);
  impl_->retry_timer.cancel();
  std::filesystem::remove(impl_->path, ec);
}

}  // namespace ft::daemon
