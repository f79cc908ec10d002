// A fake QEMU QMP monitor on a unix socket. It speaks the real protocol (greeting, capabilities
// negotiation, id echo, CommandNotFound before qmp_capabilities) and answers commands from a
// scripted table, including the ways a monitor can misbehave: never answer, close mid-reply,
// send garbage, answer late. It runs on the test's io_context; all methods must be called on
// the thread that runs it (or while it is not running).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ft/status.h"

namespace asio {
class io_context;
}  // namespace asio

namespace ft::fakes {

using Json = nlohmann::json;

// How the fake answers one command.
struct QmpScript {
  enum class Kind {
    kReturn,         // {"return": value, "id": ...}
    kError,          // {"error": {"class": ..., "desc": ...}, "id": ...}
    kHang,           // never answer
    kCloseMidReply,  // write the first half of a {"return": value} line, then close
    kGarbage,        // write `bytes` as they are, and keep the connection open
  };
  Kind kind = Kind::kReturn;
  Json value = Json::object();
  std::string error_class;
  std::string error_desc;
  std::string bytes;
  std::chrono::milliseconds delay{0};  // wait this long before answering
  bool echo_id = true;                 // QEMU echoes "id"; false drops it from the reply
  std::vector<std::pair<std::string, Json>> events_before;  // emitted just before the answer

  static QmpScript Return(Json value = Json::object());
  static QmpScript Error(std::string error_class, std::string error_desc);
  static QmpScript Hang();
  static QmpScript CloseMidReply(Json value = Json::object());
  static QmpScript Garbage(std::string bytes = "\x01\x02this is not JSON\r\n");

  QmpScript After(std::chrono::milliseconds d) const;
  QmpScript WithoutId() const;
  QmpScript WithEventBefore(std::string name, Json data = Json::object()) const;
};

class FakeQmpServer {
 public:
  enum class GreetingMode {
    kNormal,          // QEMU 7.2's greeting
    kNone,            // accept, then say nothing (QEMU wedged before the monitor runs)
    kHmpBanner,       // "QEMU 7.2.0 monitor - type 'help'..." : the human monitor, not QMP
    kJsonWithoutQmp,  // valid JSON that is not a greeting
  };

  // The greeting QEMU 7.2 sends, one line with "\r\n".
  static const char kGreetingLine[];

  FakeQmpServer(asio::io_context& io, std::string socket_path);
  ~FakeQmpServer();
  FakeQmpServer(const FakeQmpServer&) = delete;
  FakeQmpServer& operator=(const FakeQmpServer&) = delete;

  // Binds and listens (removing a stale socket file first).
  Status Start();
  // Stops listening, closes every connection and removes the socket file.
  void Stop();

  void SetGreeting(GreetingMode mode);
  // Answer `command` with `script` from now on. Unscripted commands get what QEMU sends:
  // qmp_capabilities -> {"return": {}}, anything else -> CommandNotFound.
  void Script(const std::string& command, QmpScript script);

  // Sends an event now to every connection that has negotiated capabilities.
  void EmitEvent(const std::string& name, Json data = Json::object());
  // Closes every connection (QEMU exiting), keeps listening.
  void CloseConnections();

  // Every command received, in order, as parsed JSON (including qmp_capabilities).
  const std::vector<Json>& received() const;
  // Just the "execute" names of received().
  std::vector<std::string> received_commands() const;
  size_t connections_accepted() const;
  const std::string& path() const;

  struct State;  // implementation detail

 private:
  std::shared_ptr<State> state_;  // shared with the connections' in-flight operations
};

}  // namespace ft::fakes
