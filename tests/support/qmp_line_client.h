// A blocking QMP client for tests that drive a QEMU of their own, without ftd: one line per
// message, as QEMU's monitor writes them. Not for ftd's own code (ft/replay/qmp_client.h is
// the asynchronous one).
#pragma once

#include <chrono>
#include <string>

#include "ft/status.h"

namespace ft::testing {

class QmpLineClient {
 public:
  QmpLineClient() = default;
  ~QmpLineClient();
  QmpLineClient(const QmpLineClient&) = delete;
  QmpLineClient& operator=(const QmpLineClient&) = delete;

  // Connects to the monitor's unix socket (retrying until `timeout`: QEMU creates it some
  // time after it starts), reads the greeting and negotiates capabilities. A read waits at
  // most `read_timeout`.
  Status Connect(const std::string& socket, std::chrono::milliseconds timeout,
                 std::chrono::milliseconds read_timeout = std::chrono::seconds(10));
  // Sends `text` and its line end.
  Status Send(const std::string& text);
  // One line of QEMU's output: an answer or an event ("" on a timeout or a closed socket).
  std::string ReadLine();
  // Sends `command` and returns its answer's line (a "return" or an "error"), skipping the
  // events that come before it; Unavailable if the monitor closes or goes quiet first.
  Result<std::string> Execute(const std::string& command);
  // Reads lines until an event named `event` ("SHUTDOWN"); its line.
  Result<std::string> WaitForEvent(const std::string& event);
  void Close();

 private:
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace ft::testing
