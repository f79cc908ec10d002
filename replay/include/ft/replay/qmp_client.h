// Asynchronous client for QEMU's QMP monitor on a unix socket.
//
// Threading: every handler runs on the io_context given to Create (through a strand, so the
// io_context may be run by several threads). Public methods may be called from any thread;
// they hand their work to that strand.
//
// Lifetime: in-flight asynchronous operations hold the client's state alive, so dropping the
// last shared_ptr while commands are pending is safe: the connection is closed and every
// pending handler (Connect and Execute) is called with kAborted on the io_context. The
// io_context must outlive the client.
//
// One client serves one connection: after Close(), a failed Connect or a closed monitor,
// create a new client.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "ft/status.h"

namespace asio {
class io_context;
}  // namespace asio

namespace ft::replay {

using Json = nlohmann::json;

class QmpClient : public std::enable_shared_from_this<QmpClient> {
 public:
  using ConnectHandler = std::function<void(Status)>;
  // The "return" value, or an error Status.
  using ReplyHandler = std::function<void(Result<Json>)>;
  // `data` is an object (empty when the event carries none).
  using EventHandler = std::function<void(const std::string& name, const Json& data)>;
  using ClosedHandler = std::function<void(Status why)>;

  // Lines from QEMU longer than this are treated as a desynchronized monitor.
  static constexpr size_t kMaxLineBytes = 16 * 1024 * 1024;
  // Interval between connect attempts while QEMU has not created or is not yet listening on
  // its socket.
  static constexpr std::chrono::milliseconds kConnectRetryInterval{20};

  // `name` is used in log lines and error messages (the VM name).
  static std::shared_ptr<QmpClient> Create(asio::io_context& io, std::string name);
  ~QmpClient();
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // Connects to QEMU's QMP unix socket, reads the greeting, sends qmp_capabilities and waits
  // for its empty return. Retries connect (ENOENT/ECONNREFUSED: QEMU not listening yet) every
  // kConnectRetryInterval until `timeout` expires; `timeout` covers the whole negotiation.
  // Handler called exactly once, on the io_context:
  //   kTimeout   socket never accepted / no greeting / no capabilities reply within `timeout`
  //   kProtocol  the first line is not a QMP greeting
  //   kRemote    qmp_capabilities answered with an error
  //   kUnavailable, kPermissionDenied, ...  connect failed for another reason, or EOF early
  //   kAborted   Close() or destruction during Connect
  //   kFailedPrecondition  Connect was already called on this client
  void Connect(const std::string& unix_path, std::chrono::milliseconds timeout,
               ConnectHandler done);

  // Sends a command with a fresh numeric id; the reply is matched by id (replies may come in
  // any order, events interleave). `arguments` must be an object or null. Handler called
  // exactly once, always from the io_context, never inline from Execute:
  //   value      the "return" value
  //   kRemote    QMP error reply: "<command>: <class>: <desc>"
  //   kTimeout   no reply within `timeout` (naming the command and the timeout); a late reply
  //              is dropped and logged at debug
  //   kAborted   the monitor closed (peer EOF/reset, Close(), destruction)
  //   kProtocol  the monitor sent something that is not QMP; the connection is closed
  //   kFailedPrecondition  not connected yet; kInvalidArgument  arguments not an object
  // Messages start with "vm '<name>': ".
  void Execute(const std::string& command, Json arguments, std::chrono::milliseconds timeout,
               ReplyHandler done);
  // A human monitor command (`savevm`, `delvm`, ... that have no QMP form in 7.2) through
  // human-monitor-command. HMP answers "" on success and its error text otherwise; that text
  // becomes kRemote "<command line>: <text>". Other failures as for Execute.
  void ExecuteHmp(const std::string& command_line, std::chrono::milliseconds timeout,
                  std::function<void(Status)> done);

  // Replace the previous handler. Events are delivered in wire order relative to replies.
  void OnEvent(EventHandler handler);
  // Monitor closed by the peer (kAborted) or after a protocol error (kProtocol), once, after
  // a successful Connect. Not called for Close() or destruction.
  void OnClosed(ClosedHandler handler);
  // Closes the connection; all pending commands fail with kAborted "closed".
  void Close();
  // True between a successful Connect and the close of the monitor.
  bool connected() const;

  const std::string& name() const;
  // From QEMU's greeting, once connected: e.g. "7.2.22" and its build's package string
  // ("Debian 1:7.2+dfsg-7+deb12u18 + ftd-rr" for scripts/build-qemu.sh's build).
  const std::string& qemu_version() const;
  const std::string& qemu_package() const;

 private:
  struct Impl;
  explicit QmpClient(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;  // shared with in-flight asynchronous operations
};

// Blocking convenience for tools and tests: run `io` until the operation completes. Must not
// be called from a handler running on `io`. Restarts `io` if it had stopped.
Status ConnectBlocking(asio::io_context& io, QmpClient& client, const std::string& unix_path,
                       std::chrono::milliseconds timeout);
Result<Json> ExecuteBlocking(asio::io_context& io, QmpClient& client, const std::string& command,
                             Json arguments, std::chrono::milliseconds timeout);

}  // namespace ft::replay
