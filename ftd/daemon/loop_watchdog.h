// Internal to ftd: a watchdog on the daemon's one event loop. Every handler runs on that
// thread, so a handler that blocks (a subprocess waited for, a large write, an fsync) holds
// up every VM's heartbeats; past heartbeat_timeout_ms the peer declares this host dead. A
// timer due every `period` that runs late by more than `threshold` says so in the log.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

namespace asio {
class io_context;
}

namespace ft::daemon {

// Pure: the lateness of each tick and what has been seen so far.
class StallMeter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit StallMeter(std::chrono::milliseconds threshold) : threshold_(threshold) {}
  // A tick due at `due` ran at `ran`: how late it came when that is a stall (more than the
  // threshold), else nullopt.
  std::optional<std::chrono::milliseconds> Tick(Clock::time_point due, Clock::time_point ran);
  uint64_t stalls() const { return stalls_; }
  std::chrono::milliseconds worst() const { return worst_; }  // of every tick, stall or not

 private:
  std::chrono::milliseconds threshold_;
  uint64_t stalls_ = 0;
  std::chrono::milliseconds worst_{0};
};

class LoopWatchdog {
 public:
  static constexpr std::chrono::milliseconds kPeriod{100};
  // A tenth of the default heartbeat timeout: well before a peer could notice.
  static constexpr std::chrono::milliseconds kThreshold{100};

  explicit LoopWatchdog(asio::io_context& io, std::chrono::milliseconds period = kPeriod,
                        std::chrono::milliseconds threshold = kThreshold);
  ~LoopWatchdog();
  LoopWatchdog(const LoopWatchdog&) = delete;
  LoopWatchdog& operator=(const LoopWatchdog&) = delete;

  void Start();
  // Cancels the timer, so that io_context::run() can return.
  void Stop();
  const StallMeter& meter() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace ft::daemon
