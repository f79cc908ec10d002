#include "fake_qmp_server.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <deque>
#include <map>
#include <system_error>

#include <asio.hpp>

namespace ft::fakes {
namespace {

using Socket = asio::local::stream_protocol::socket;

std::string Line(const Json& object) { return object.dump() + "\r\n"; }

Json ErrorObject(const std::string& error_class, const std::string& desc) {
  return Json{{"error", {{"class", error_class}, {"desc", desc}}}};
}

Json EventObject(const std::string& name, const Json& data) {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
  return Json{{"event", name},
              {"data", data},
              {"timestamp", {{"seconds", micros / 1000000}, {"microseconds", micros % 1000000}}}};
}

}  // namespace

const char FakeQmpServer::kGreetingLine[] =
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
    "\"package\": \"Debian 1:7.2+dfsg-7+deb12u2\"}, \"capabilities\": [\"oob\"]}}\r\n";

QmpScript QmpScript::Return(Json value) {
  QmpScript s;
  s.kind = Kind::kReturn;
  s.value = std::move(value);
  return s;
}

QmpScript QmpScript::Error(std::string error_class, std::string error_desc) {
  QmpScript s;
  s.kind = Kind::kError;
  s.error_class = std::move(error_class);
  s.error_desc = std::move(error_desc);
  return s;
}

QmpScript QmpScript::Hang() {
  QmpScript s;
  s.kind = Kind::kHang;
  return s;
}

QmpScript QmpScript::CloseMidReply(Json value) {
  QmpScript s;
  s.kind = Kind::kCloseMidReply;
  s.value = std::move(value);
  return s;
}

QmpScript QmpScript::Garbage(std::string bytes) {
  QmpScript s;
  s.kind = Kind::kGarbage;
  s.bytes = std::move(bytes);
  return s;
}

QmpScript QmpScript::After(std::chrono::milliseconds d) const {
  QmpScript s = *this;
  s.delay = d;
  return s;
}

QmpScript QmpScript::WithoutId() const {
  QmpScript s = *this;
  s.echo_id = false;
  return s;
}

QmpScript QmpScript::WithEventBefore(std::string name, Json data) const {
  QmpScript s = *this;
  s.events_before.emplace_back(std::move(name), std::move(data));
  return s;
}

class QmpSession;

struct FakeQmpServer::State {
  State(asio::io_context& io_context, std::string socket_path)
      : io(io_context), path(std::move(socket_path)), acceptor(io_context) {}

  asio::io_context& io;
  std::string path;
  asio::local::stream_protocol::acceptor acceptor;
  GreetingMode greeting = GreetingMode::kNormal;
  std::map<std::string, QmpScript> scripts;
  std::vector<Json> received;
  std::vector<std::weak_ptr<QmpSession>> sessions;
  size_t accepted = 0;
};

// One accepted connection: QEMU's monitor state machine for one client.
class QmpSession : public std::enable_shared_from_this<QmpSession> {
 public:
  QmpSession(std::shared_ptr<FakeQmpServer::State> server, Socket socket)
      : server_(std::move(server)), socket_(std::move(socket)) {}

  void Start() {
    switch (server_->greeting) {
      case FakeQmpServer::GreetingMode::kNormal:
        Write(FakeQmpServer::kGreetingLine);
        break;
      case FakeQmpServer::GreetingMode::kNone:
        break;
      case FakeQmpServer::GreetingMode::kHmpBanner:
        Write("QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) ");
        break;
      case FakeQmpServer::GreetingMode::kJsonWithoutQmp:
        Write(Line(Json{{"hello", "this is not a QMP greeting"}}));
        break;
    }
    Read();
  }

  bool negotiated() const { return negotiated_; }
  bool open() const { return socket_.is_open(); }

  void Write(std::string bytes) {
    if (!open() || closing_) return;
    writes_.push_back(std::move(bytes));
    if (!writing_) WriteNext();
  }

  // Closes after everything queued so far has been written.
  void CloseAfterWrites() {
    closing_ = true;
    if (!writing_) Close();
  }

  void Close() {
    std::error_code ignored;
    socket_.shutdown(Socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 private:
  void Read() {
    socket_.async_read_some(asio::buffer(chunk_),
                            [self = shared_from_this()](std::error_code ec, size_t n) {
                              if (ec) {
                                self->Close();
                                return;
                              }
                              self->inbuf_.append(self->chunk_.data(), n);
                              self->ProcessLines();
                              if (self->open()) self->Read();
                            });
  }

  void ProcessLines() {
    size_t nl;
    while (open() && (nl = inbuf_.find('\n')) != std::string::npos) {
      std::string line = inbuf_.substr(0, nl);
      inbuf_.erase(0, nl + 1);
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      OnCommandLine(line);
    }
  }

  void OnCommandLine(const std::string& line) {
    Json command = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (command.is_discarded()) {
      Write(Line(ErrorObject("GenericError", "JSON parse error, invalid keyword")));
      return;
    }
    if (!command.is_object()) {
      Write(Line(ErrorObject("GenericError", "QMP input must be a JSON object")));
      return;
    }
    server_->received.push_back(command);
    Json id = command.contains("id") ? command["id"] : Json();
    auto execute = command.find("execute");
    if (execute == command.end() || !execute->is_string()) {
      Reply(ErrorObject("GenericError", "QMP input lacks member 'execute'"), id);
      return;
    }
    const std::string name = execute->get<std::string>();
    if (!negotiated_ && name != "qmp_capabilities") {
      Reply(ErrorObject("CommandNotFound",
                        "Expecting capabilities negotiation with 'qmp_capabilities'"),
            id);
      return;
    }
    if (negotiated_ && name == "qmp_capabilities") {
      Reply(ErrorObject("CommandNotFound",
                        "Capabilities negotiation is already complete, command ignored"),
            id);
      return;
    }
    auto scripted = server_->scripts.find(name);
    if (scripted == server_->scripts.end()) {
      if (name == "qmp_capabilities") {
        negotiated_ = true;
        Reply(Json{{"return", Json::object()}}, id);
      } else {
        Reply(ErrorObject("CommandNotFound", "The command " + name + " has not been found"), id);
      }
      return;
    }
    QmpScript script = scripted->second;
    if (script.delay.count() == 0) {
      Answer(name, script, id);
      return;
    }
    auto timer = std::make_shared<asio::steady_timer>(server_->io, script.delay);
    timer->async_wait([self = shared_from_this(), timer, name, script, id](std::error_code ec) {
      if (!ec && self->open()) self->Answer(name, script, id);
    });
  }

  void Answer(const std::string& name, const QmpScript& script, const Json& id) {
    for (const auto& [event, data] : script.events_before) Write(Line(EventObject(event, data)));
    const Json& echoed = script.echo_id ? id : Json();
    switch (script.kind) {
      case QmpScript::Kind::kReturn:
        if (name == "qmp_capabilities") negotiated_ = true;
        Reply(Json{{"return", script.value}}, echoed);
        break;
      case QmpScript::Kind::kError:
        Reply(ErrorObject(script.error_class, script.error_desc), echoed);
        break;
      case QmpScript::Kind::kHang:
        break;
      case QmpScript::Kind::kCloseMidReply: {
        Json reply{{"return", script.value}};
        if (!echoed.is_null()) reply["id"] = echoed;
        std::string line = Line(reply);
        Write(line.substr(0, line.size() / 2));
        CloseAfterWrites();
        break;
      }
      case QmpScript::Kind::kGarbage:
        Write(script.bytes);
        break;
    }
  }

  void Reply(Json reply, const Json& id) {
    if (!id.is_null()) reply["id"] = id;
    Write(Line(reply));
  }

  void WriteNext() {
    writing_ = true;
    asio::async_write(socket_, asio::buffer(writes_.front()),
                      [self = shared_from_this()](std::error_code ec, size_t) {
                        self->writing_ = false;
                        if (ec) {
                          self->Close();
                          return;
                        }
                        self->writes_.pop_front();
                        if (!self->writes_.empty()) {
                          self->WriteNext();
                        } else if (self->closing_) {
                          self->Close();
                        }
                      });
  }

  std::shared_ptr<FakeQmpServer::State> server_;
  Socket socket_;
  bool negotiated_ = false;
  bool closing_ = false;
  std::deque<std::string> writes_;
  bool writing_ = false;
  std::array<char, 64 * 1024> chunk_{};
  std::string inbuf_;
};

FakeQmpServer::FakeQmpServer(asio::io_context& io, std::string socket_path)
    : state_(std::make_shared<State>(io, std::move(socket_path))) {}

FakeQmpServer::~FakeQmpServer() { Stop(); }

namespace {

void AcceptLoop(const std::shared_ptr<FakeQmpServer::State>& state);

}  // namespace

Status FakeQmpServer::Start() {
  ::unlink(state_->path.c_str());
  std::error_code ec;
  asio::local::stream_protocol::endpoint endpoint(state_->path);
  state_->acceptor.open(endpoint.protocol(), ec);
  if (!ec) state_->acceptor.bind(endpoint, ec);
  if (!ec) state_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Unavailable("fake QMP server on '" + state_->path + "': " + ec.message());
  AcceptLoop(state_);
  return Status::Ok();
}

void FakeQmpServer::Stop() {
  std::error_code ignored;
  if (state_->acceptor.is_open()) {
    state_->acceptor.close(ignored);
    ::unlink(state_->path.c_str());
  }
  CloseConnections();
}

void FakeQmpServer::SetGreeting(GreetingMode mode) { state_->greeting = mode; }

void FakeQmpServer::Script(const std::string& command, QmpScript script) {
  state_->scripts[command] = std::move(script);
}

void FakeQmpServer::EmitEvent(const std::string& name, Json data) {
  for (auto& weak : state_->sessions) {
    if (auto session = weak.lock(); session && session->negotiated()) {
      session->Write(Line(EventObject(name, data)));
    }
  }
}

void FakeQmpServer::CloseConnections() {
  for (auto& weak : state_->sessions) {
    if (auto session = weak.lock()) session->Close();
  }
  state_->sessions.clear();
}

const std::vector<Json>& FakeQmpServer::received() const { return state_->received; }

std::vector<std::string> FakeQmpServer::received_commands() const {
  std::vector<std::string> names;
  for (const Json& command : state_->received) {
    names.push_back(command.is_object() && command.contains("execute") &&
                            command["execute"].is_string()
                        ? command["execute"].get<std::string>()
                        : std::string("<no execute>"));
  }
  return names;
}

size_t FakeQmpServer::connections_accepted() const { return state_->accepted; }

const std::string& FakeQmpServer::path() const { return state_->path; }

namespace {

// The handler holds only a weak reference, so destroying the server ends the loop.
void AcceptLoop(const std::shared_ptr<FakeQmpServer::State>& state) {
  state->acceptor.async_accept(
      [weak = std::weak_ptr<FakeQmpServer::State>(state)](std::error_code ec, Socket socket) {
        auto alive = weak.lock();
        if (!alive || ec || !alive->acceptor.is_open()) return;
        ++alive->accepted;
        auto session = std::make_shared<QmpSession>(alive, std::move(socket));
        alive->sessions.push_back(session);
        session->Start();
        AcceptLoop(alive);
      });
}

}  // namespace

}  // namespace ft::fakes
