// A client for the test guest's services (guest/README.md): the stream+echo service checks
// every line's sequence number and CRC and every echo; the records service appends
// acknowledged records. Blocking sockets with deadlines: tests and tools only.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "ft/status.h"

namespace ft::testing {

using Clock = std::chrono::steady_clock;

// Connects to host:port, retrying refused connections until `timeout` (a forwarded port may
// accept before the guest's service listens, then reset).
Result<int> ConnectTcp(const std::string& host, uint16_t port, std::chrono::milliseconds timeout);

// Connects to the unix socket at `path`, retrying until `timeout` (a QEMU creates its
// monitor socket some time after it starts).
Result<int> ConnectUnix(const std::string& path, std::chrono::milliseconds timeout);

class StreamClient {
 public:
  ~StreamClient();
  Status Connect(const std::string& host, uint16_t port, std::chrono::milliseconds timeout);
  // Sends "<text>\n"; the guest echoes "E <text>".
  Status SendEcho(const std::string& text);
  // Reads until `lines` more S lines arrived (and any echoes in between), checking each:
  // seq = previous + 1, CRC valid, echoes equal what was sent, in order.
  Status ReadStream(int lines, std::chrono::milliseconds timeout);
  // Reads until every sent echo came back.
  Status AwaitEchoes(std::chrono::milliseconds timeout);

  uint64_t last_seq() const { return last_seq_; }
  uint64_t stream_lines() const { return stream_lines_; }
  uint64_t echoes_matched() const { return echoes_matched_; }
  // When bytes last came off the socket (a failover benchmark's "first byte" clock).
  Clock::time_point last_received_at() const { return last_received_at_; }
  void Close();

 private:
  Status ReadLine(std::string& line, Clock::time_point deadline);
  Status HandleLine(const std::string& line);

  int fd_ = -1;
  std::string buffer_;
  uint64_t last_seq_ = 0;
  uint64_t stream_lines_ = 0;
  uint64_t echoes_matched_ = 0;
  Clock::time_point last_received_at_{};
  std::vector<std::string> pending_echoes_;
};

class RecordClient {
 public:
  ~RecordClient();
  Status Connect(const std::string& host, uint16_t port, std::chrono::milliseconds timeout);
  // "W <n> <payload>" -> waits for "A <n>".
  Status Append(uint64_t n, const std::string& payload, std::chrono::milliseconds timeout);
  struct Verify {
    uint64_t count = 0;
    uint64_t torn = 0;
    uint64_t last = 0;
  };
  Result<Verify> VerifyAll(std::chrono::milliseconds timeout);
  void Close();

 private:
  Result<std::string> Request(const std::string& line, std::chrono::milliseconds timeout);
  int fd_ = -1;
  std::string buffer_;
};

// Reads a text file whole ("" if missing).
std::string ReadFile(const std::string& path);

// Polls `path` until it contains `needle` or `timeout` passes.
bool WaitForFileContaining(const std::string& path, const std::string& needle,
                           std::chrono::milliseconds timeout);

}  // namespace ft::testing
