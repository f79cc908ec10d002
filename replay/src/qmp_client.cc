#include "ft/replay/qmp_client.h"

#include <sys/un.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <deque>
#include <map>
#include <optional>
#include <system_error>
#include <utility>

#include <spdlog/logger.h>
#include <asio.hpp>

#include "ft/log.h"
#include "ft/replay/qmp_message.h"

namespace ft::replay {
namespace {

using Socket = asio::local::stream_protocol::socket;
using Strand = asio::strand<asio::io_context::executor_type>;

// Late replies to timed-out commands are recognised (and dropped quietly) for this many ids.
constexpr size_t kRememberedAbandonedIds = 1024;
// Traffic is logged at debug; very long lines (query-* output) are cut.
constexpr size_t kLoggedLineBytes = 1024;

std::string Ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

std::string QemuVersion(const Json& greeting) {
  const Json* v = &greeting;
  for (const char* key : {"version", "qemu"}) {
    if (!v->is_object() || !v->contains(key)) return "unknown";
    v = &(*v)[key];
  }
  std::string out;
  for (const char* key : {"major", "minor", "micro"}) {
    auto it = v->find(key);
    if (it == v->end() || !it->is_number_integer()) return "unknown";
    if (!out.empty()) out += '.';
    out += std::to_string(it->get<int64_t>());
  }
  return out;
}

bool IsRetryableConnectError(const std::error_code& ec) {
  // ENOENT: QEMU has not created the socket yet. ECONNREFUSED: the file is there but nobody
  // listens (QEMU still starting, or a stale socket). EAGAIN: the listen backlog is full.
  if (ec.category() != asio::error::get_system_category()) return false;
  return ec.value() == ENOENT || ec.value() == ECONNREFUSED || ec.value() == EAGAIN;
}

}  // namespace

struct QmpClient::Impl : std::enable_shared_from_this<QmpClient::Impl> {
  enum class State { kIdle, kConnecting, kConnected, kClosed };
  enum class ConnectPhase { kSocket, kGreeting, kNegotiating };

  struct Pending {
    std::string command;
    ReplyHandler done;
    std::unique_ptr<asio::steady_timer> timer;
  };

  Impl(asio::io_context& io, std::string vm_name)
      : strand(asio::make_strand(io)),
        socket(strand),
        connect_deadline(strand),
        retry_timer(strand),
        name(std::move(vm_name)),
        prefix("vm '" + name + "': "),
        log(Logger("qmp")) {}

  // --- Connect ---------------------------------------------------------------------------

  void StartConnect(std::string unix_path, std::chrono::milliseconds timeout, ConnectHandler done) {
    if (state != State::kIdle) {
      PostStatus(std::move(done),
                 FailedPrecondition(prefix + (state == State::kClosed
                                                  ? "QMP client is closed; create a new one"
                                                  : "QMP Connect called twice on one client")));
      return;
    }
    state = State::kConnecting;
    phase = ConnectPhase::kSocket;
    path = std::move(unix_path);
    connect_timeout = timeout;
    connect_done = std::move(done);

    if (path.empty() || path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      CloseWith(StatusCode::kInvalidArgument,
                "QMP socket path '" + path + "' is " + std::to_string(path.size()) +
                    " bytes; a unix socket path must be 1 to " +
                    std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes",
                false);
      return;
    }
    log->debug("{}connecting to QMP socket {} (timeout {})", prefix, path, Ms(timeout));
    connect_deadline.expires_after(timeout);
    connect_deadline.async_wait([self = shared_from_this()](std::error_code ec) {
      if (!ec) self->OnConnectDeadline();
    });
    TryConnect();
  }

  void TryConnect() {
    socket.async_connect(
        asio::local::stream_protocol::endpoint(path),
        [self = shared_from_this()](std::error_code ec) { self->OnSocketConnected(ec); });
  }

  void OnSocketConnected(std::error_code ec) {
    if (state != State::kConnecting || phase != ConnectPhase::kSocket) return;
    if (ec) {
      last_connect_error = ec;
      std::error_code ignored;
      socket.close(ignored);
      if (!IsRetryableConnectError(ec)) {
        Status s = ErrnoStatus("cannot connect to QMP socket '" + path + "'", ec.value());
        CloseWith(s.code(), s.message(), false);
        return;
      }
      retry_timer.expires_after(kConnectRetryInterval);
      retry_timer.async_wait([self = shared_from_this()](std::error_code timer_ec) {
        if (timer_ec || self->state != State::kConnecting) return;
        self->TryConnect();
      });
      return;
    }
    log->debug("{}connected to QMP socket {}, waiting for the greeting", prefix, path);
    phase = ConnectPhase::kGreeting;
    StartRead();
  }

  void OnConnectDeadline() {
    if (state != State::kConnecting) return;
    std::string why;
    switch (phase) {
      case ConnectPhase::kSocket:
        why = "QMP socket '" + path + "' not accepting connections within " + Ms(connect_timeout);
        if (last_connect_error) why += " (last error: " + last_connect_error.message() + ")";
        break;
      case ConnectPhase::kGreeting:
        why = "connected to QMP socket '" + path + "' but QEMU sent no greeting within " +
              Ms(connect_timeout);
        break;
      case ConnectPhase::kNegotiating:
        why =
            "QEMU did not answer qmp_capabilities on '" + path + "' within " + Ms(connect_timeout);
        break;
    }
    CloseWith(StatusCode::kTimeout, why, false);
  }

  void OnConnectLine(const QmpMessage& m, std::string_view line) {
    if (phase == ConnectPhase::kGreeting) {
      if (m.kind != QmpMessageKind::kGreeting) {
        std::string why = "QMP socket '" + path + "' did not start with a QMP greeting";
        if (m.kind == QmpMessageKind::kMalformed) why += " (" + m.problem + ")";
        why += "; first line: '" + AbbreviateQmpLine(line) + "'";
        CloseWith(StatusCode::kProtocol, why, false);
        return;
      }
      log->debug("{}QMP greeting from QEMU {}", prefix, QemuVersion(m.value));
      qemu_version = QemuVersion(m.value);
      if (auto v = m.value.find("version"); v != m.value.end() && v->is_object()) {
        qemu_package = v->value("package", "");
      }
      phase = ConnectPhase::kNegotiating;
      capabilities_id = next_id++;
      Write(SerializeQmpCommand("qmp_capabilities", Json(), capabilities_id));
      return;
    }
    // kNegotiating
    if (m.kind == QmpMessageKind::kEvent) {
      DeliverEvent(m);
      return;
    }
    if ((m.kind == QmpMessageKind::kReturn || m.kind == QmpMessageKind::kError) &&
        m.numeric_id() == capabilities_id) {
      if (m.kind == QmpMessageKind::kError) {
        CloseWith(StatusCode::kRemote, "qmp_capabilities: " + m.error_class + ": " + m.error_desc,
                  false);
        return;
      }
      state = State::kConnected;
      is_connected = true;
      connect_deadline.cancel();
      log->info("{}QMP connected to {} (QEMU {})", prefix, path, qemu_version);
      PostStatus(std::move(connect_done), Status::Ok());
      connect_done = nullptr;
      return;
    }
    std::string why = "unexpected QMP " + std::string(QmpMessageKindName(m.kind)) +
                      " while negotiating capabilities";
    if (m.kind == QmpMessageKind::kMalformed) why += " (" + m.problem + ")";
    why += ": '" + AbbreviateQmpLine(line) + "'";
    CloseWith(StatusCode::kProtocol, why, false);
  }

  // --- Commands --------------------------------------------------------------------------

  void StartExecute(std::string command, Json arguments, std::chrono::milliseconds timeout,
                    ReplyHandler done) {
    if (state != State::kConnected) {
      Status s =
          state == State::kClosed
              ? Aborted(prefix + command + ": QMP connection is closed (" + close_reason + ")")
              : FailedPrecondition(prefix + command + ": QMP is not connected yet");
      PostResult(std::move(done), std::move(s));
      return;
    }
    if (!arguments.is_null() && !arguments.is_object()) {
      PostResult(std::move(done),
                 InvalidArgument(prefix + command + ": QMP arguments must be a JSON object, not " +
                                 arguments.type_name()));
      return;
    }
    uint64_t id = next_id++;
    auto timer = std::make_unique<asio::steady_timer>(strand);
    timer->expires_after(timeout);
    timer->async_wait([self = shared_from_this(), id, timeout](std::error_code ec) {
      if (!ec) self->OnCommandTimeout(id, timeout);
    });
    std::string line = SerializeQmpCommand(command, arguments, id);
    pending.emplace(id, Pending{std::move(command), std::move(done), std::move(timer)});
    Write(std::move(line));
  }

  void OnCommandTimeout(uint64_t id, std::chrono::milliseconds timeout) {
    auto it = pending.find(id);
    if (it == pending.end()) return;  // the reply won the race
    Pending p = std::move(it->second);
    pending.erase(it);
    log->warn("{}QMP command {} (id {}) got no reply within {}", prefix, p.command, id,
              Ms(timeout));
    abandoned.emplace(id, p.command);
    if (abandoned.size() > kRememberedAbandonedIds) abandoned.erase(abandoned.begin());
    PostResult(std::move(p.done),
               Timeout(prefix + p.command + ": no reply from QEMU within " + Ms(timeout)));
  }

  void OnReply(const QmpMessage& m, std::string_view line) {
    std::optional<uint64_t> id = m.numeric_id();
    auto it = id ? pending.find(*id) : pending.end();
    if (it == pending.end()) {
      auto late = id ? abandoned.find(*id) : abandoned.end();
      if (late != abandoned.end()) {
        log->debug("{}dropping late QMP reply to {} (id {}) after its timeout", prefix,
                   late->second, *id);
        abandoned.erase(late);
      } else {
        log->warn("{}dropping QMP reply that matches no pending command: '{}'", prefix,
                  AbbreviateQmpLine(line));
      }
      return;
    }
    Pending p = std::move(it->second);
    pending.erase(it);
    p.timer->cancel();
    if (m.kind == QmpMessageKind::kReturn) {
      PostResult(std::move(p.done), Result<Json>(m.value));
    } else {
      log->debug("{}QMP command {} failed: {}: {}", prefix, p.command, m.error_class, m.error_desc);
      PostResult(std::move(p.done),
                 RemoteError(prefix + p.command + ": " + m.error_class + ": " + m.error_desc));
    }
  }

  void DeliverEvent(const QmpMessage& m) {
    asio::post(strand, [self = shared_from_this(), event = m.event, data = m.value] {
      if (self->on_event) self->on_event(event, data);
    });
  }

  // --- Reading ---------------------------------------------------------------------------

  void StartRead() {
    socket.async_read_some(
        asio::buffer(read_chunk),
        [self = shared_from_this()](std::error_code ec, size_t n) { self->OnRead(ec, n); });
  }

  void OnRead(std::error_code ec, size_t n) {
    if (state != State::kConnecting && state != State::kConnected) return;
    if (ec) {
      OnPeerGone(ec);
      return;
    }
    inbuf.append(read_chunk.data(), n);
    ProcessLines();
    if (state == State::kConnecting || state == State::kConnected) StartRead();
  }

  void ProcessLines() {
    size_t start = 0;
    for (;;) {
      size_t nl = inbuf.find('\n', scanned);
      if (nl == std::string::npos) break;
      std::string_view line(inbuf.data() + start, nl + 1 - start);
      start = nl + 1;
      scanned = start;
      if (line.size() > kMaxLineBytes) {
        OnOversizedLine(line.size());
        return;
      }
      HandleLine(line);
      if (state != State::kConnecting && state != State::kConnected) return;
    }
    inbuf.erase(0, start);
    scanned = inbuf.size();
    if (inbuf.size() > kMaxLineBytes) OnOversizedLine(inbuf.size());
  }

  void OnOversizedLine(size_t bytes) {
    CloseWith(StatusCode::kProtocol,
              "QMP monitor sent a line longer than 16 MiB (" + std::to_string(bytes) +
                  " bytes without a newline); closing the desynchronized connection",
              true);
  }

  void HandleLine(std::string_view line) {
    if (line.find_first_not_of(" \t\r\n") == std::string_view::npos) return;  // stray blank
    log->debug("{}QMP <- {}", prefix, AbbreviateQmpLine(line, kLoggedLineBytes));
    QmpMessage m = ParseQmpMessage(line);
    if (state == State::kConnecting) {
      OnConnectLine(m, line);
      return;
    }
    switch (m.kind) {
      case QmpMessageKind::kReturn:
      case QmpMessageKind::kError:
        OnReply(m, line);
        return;
      case QmpMessageKind::kEvent:
        DeliverEvent(m);
        return;
      case QmpMessageKind::kGreeting:
        CloseWith(StatusCode::kProtocol,
                  "QMP monitor sent a second greeting; closing the desynchronized connection",
                  true);
        return;
      case QmpMessageKind::kMalformed:
        CloseWith(StatusCode::kProtocol,
                  "QMP monitor sent a line that is not QMP (" + m.problem +
                      "); closing the desynchronized connection; line: '" +
                      AbbreviateQmpLine(line) + "'",
                  true);
        return;
    }
  }

  void OnPeerGone(std::error_code ec) {
    std::string why;
    if (ec == asio::error::eof) {
      why = "QMP monitor closed by QEMU";
    } else {
      why = "QMP monitor connection lost: " + ec.message();
    }
    if (!inbuf.empty()) {
      why += " in the middle of a message (" + std::to_string(inbuf.size()) +
             " bytes of an unterminated line)";
    }
    // Before the handshake completes the monitor is merely unavailable; afterwards every
    // pending command is aborted.
    CloseWith(state == State::kConnecting ? StatusCode::kUnavailable : StatusCode::kAborted, why,
              true);
  }

  // --- Writing ---------------------------------------------------------------------------

  void Write(std::string line) {
    log->debug("{}QMP -> {}", prefix, AbbreviateQmpLine(line, kLoggedLineBytes));
    write_queue.push_back(std::move(line));
    if (!writing) WriteNext();
  }

  void WriteNext() {
    writing = true;
    asio::async_write(
        socket, asio::buffer(write_queue.front()),
        [self = shared_from_this()](std::error_code ec, size_t) { self->OnWritten(ec); });
  }

  void OnWritten(std::error_code ec) {
    writing = false;
    if (state != State::kConnecting && state != State::kConnected) return;
    if (ec) {
      OnPeerGone(ec);
      return;
    }
    write_queue.pop_front();
    if (!write_queue.empty()) WriteNext();
  }

  // --- Closing ---------------------------------------------------------------------------

  // Ends the connection for good. `why` is the reason without the "vm '<name>': " prefix;
  // pending commands get "vm '<name>': <command>: <why>".
  void CloseWith(StatusCode code, const std::string& why, bool notify_closed) {
    if (state == State::kClosed) return;
    State was = state;
    state = State::kClosed;
    is_connected = false;
    close_reason = why;

    std::error_code ignored;
    connect_deadline.cancel();
    retry_timer.cancel();
    socket.close(ignored);
    inbuf.clear();
    scanned = 0;

    if (was == State::kIdle) {
      log->debug("{}QMP client closed before connecting: {}", prefix, why);
    } else if (was == State::kConnecting) {
      log->info("{}QMP connect failed: {}", prefix, why);
      if (connect_done) PostStatus(std::move(connect_done), Status(code, prefix + why));
      connect_done = nullptr;
    } else if (code == StatusCode::kProtocol) {
      log->error("{}{}", prefix, why);
    } else {
      log->info("{}{}", prefix, why);
    }

    auto failed = std::move(pending);
    pending.clear();
    for (auto& [id, p] : failed) {
      p.timer->cancel();
      PostResult(std::move(p.done), Status(code, prefix + p.command + ": " + why));
    }
    if (notify_closed && was == State::kConnected) {
      asio::post(strand, [self = shared_from_this(), s = Status(code, prefix + why)] {
        if (self->on_closed) self->on_closed(s);
      });
    }
  }

  // --- Handler plumbing ------------------------------------------------------------------

  void PostStatus(ConnectHandler done, Status s) {
    if (!done) return;
    asio::post(strand, [done = std::move(done), s = std::move(s)] { done(s); });
  }
  void PostResult(ReplyHandler done, Result<Json> r) {
    if (!done) return;
    asio::post(strand,
               [done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
  }

  Strand strand;
  Socket socket;
  asio::steady_timer connect_deadline;
  asio::steady_timer retry_timer;
  const std::string name;
  const std::string prefix;  // "vm '<name>': "
  std::shared_ptr<spdlog::logger> log;

  // Everything below is touched only on the strand, except is_connected.
  State state = State::kIdle;
  ConnectPhase phase = ConnectPhase::kSocket;
  std::string path;
  std::chrono::milliseconds connect_timeout{0};
  ConnectHandler connect_done;
  std::error_code last_connect_error;
  uint64_t capabilities_id = 0;
  std::string qemu_version, qemu_package;
  std::string close_reason;
  std::atomic<bool> is_connected{false};

  uint64_t next_id = 1;
  std::map<uint64_t, Pending> pending;
  std::map<uint64_t, std::string> abandoned;  // timed-out id -> command

  std::deque<std::string> write_queue;  // front() is being written while `writing`
  bool writing = false;

  std::array<char, 64 * 1024> read_chunk{};
  std::string inbuf;   // bytes received but not yet consumed as lines
  size_t scanned = 0;  // inbuf[0, scanned) holds no '\n'

  EventHandler on_event;
  ClosedHandler on_closed;
};

std::shared_ptr<QmpClient> QmpClient::Create(asio::io_context& io, std::string name) {
  return std::shared_ptr<QmpClient>(new QmpClient(std::make_shared<Impl>(io, std::move(name))));
}

QmpClient::QmpClient(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

QmpClient::~QmpClient() {
  impl_->is_connected = false;
  asio::dispatch(impl_->strand, [impl = impl_] {
    impl->CloseWith(StatusCode::kAborted, "QMP client destroyed; connection closed", false);
  });
}

void QmpClient::Connect(const std::string& unix_path, std::chrono::milliseconds timeout,
                        ConnectHandler done) {
  asio::post(impl_->strand, [impl = impl_, unix_path, timeout, done = std::move(done)]() mutable {
    impl->StartConnect(std::move(unix_path), timeout, std::move(done));
  });
}

void QmpClient::Execute(const std::string& command, Json arguments,
                        std::chrono::milliseconds timeout, ReplyHandler done) {
  asio::post(impl_->strand, [impl = impl_, command, arguments = std::move(arguments), timeout,
                             done = std::move(done)]() mutable {
    impl->StartExecute(std::move(command), std::move(arguments), timeout, std::move(done));
  });
}

void QmpClient::ExecuteHmp(const std::string& command_line, std::chrono::milliseconds timeout,
                           std::function<void(Status)> done) {
  Execute("human-monitor-command", Json{{"command-line", command_line}}, timeout,
          [command_line, done = std::move(done)](Result<Json> r) {
            if (!r.ok()) return done(r.status().WithContext(command_line));
            std::string said = r->is_string() ? r->get<std::string>() : "";
            while (!said.empty() && (said.back() == '\n' || said.back() == '\r')) said.pop_back();
            if (!said.empty()) return done(RemoteError(command_line + ": " + said));
            done(Status::Ok());
          });
}

void QmpClient::OnEvent(EventHandler handler) {
  asio::dispatch(impl_->strand, [impl = impl_, handler = std::move(handler)]() mutable {
    impl->on_event = std::move(handler);
  });
}

void QmpClient::OnClosed(ClosedHandler handler) {
  asio::dispatch(impl_->strand, [impl = impl_, handler = std::move(handler)]() mutable {
    impl->on_closed = std::move(handler);
  });
}

void QmpClient::Close() {
  impl_->is_connected = false;
  asio::dispatch(impl_->strand, [impl = impl_] {
    impl->CloseWith(StatusCode::kAborted, "QMP connection closed by the client", false);
  });
}

bool QmpClient::connected() const { return impl_->is_connected; }

const std::string& QmpClient::name() const { return impl_->name; }
const std::string& QmpClient::qemu_version() const { return impl_->qemu_version; }
const std::string& QmpClient::qemu_package() const { return impl_->qemu_package; }

namespace {

// Runs `io` until `done()` or `limit` has passed. The client's own timers guarantee
// completion well before `limit`; the limit only guards against a bug turning into a hang.
template <typename Done>
void RunUntil(asio::io_context& io, Done done, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    if (io.stopped()) io.restart();
    io.run_one_until(deadline);
  }
}

constexpr std::chrono::seconds kBlockingGrace{5};

}  // namespace

Status ConnectBlocking(asio::io_context& io, QmpClient& client, const std::string& unix_path,
                       std::chrono::milliseconds timeout) {
  auto result = std::make_shared<std::optional<Status>>();
  client.Connect(unix_path, timeout, [result](Status s) { *result = std::move(s); });
  RunUntil(
      io, [&] { return result->has_value(); }, timeout + kBlockingGrace);
  if (!result->has_value()) {
    return Timeout("vm '" + client.name() + "': QMP connect to '" + unix_path +
                   "' did not complete (is the io_context running elsewhere?)");
  }
  return **result;
}

Result<Json> ExecuteBlocking(asio::io_context& io, QmpClient& client, const std::string& command,
                             Json arguments, std::chrono::milliseconds timeout) {
  auto result = std::make_shared<std::optional<Result<Json>>>();
  client.Execute(command, std::move(arguments), timeout,
                 [result](Result<Json> r) { result->emplace(std::move(r)); });
  RunUntil(
      io, [&] { return result->has_value(); }, timeout + kBlockingGrace);
  if (!result->has_value()) {
    return Timeout("vm '" + client.name() + "': " + command +
                   ": did not complete (is the io_context running elsewhere?)");
  }
  return std::move(**result);
}

}  // namespace ft::replay
