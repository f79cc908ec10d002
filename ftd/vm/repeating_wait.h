// Internal to ftd: waits on the daemon's event loop that arm themselves again each time they
// fire (a role's tick, the SIGCHLD watch), with a Stop() that really ends them.
//
// ftd exits when its event loop runs out of work. asio's cancel() cannot take back a
// completion that is already queued: a timer that expired (or a signal that arrived) in the
// same wake-up as the handler that stops it still runs its handler, without an error. A
// handler that checked only the error and armed itself again from there kept the loop, and
// so ftd after SIGTERM, running for good (about 1 stop in 40: the primary's 20 ms tick and
// the QEMU exit poll's 20 ms timer expiring together). These check that they were stopped.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace asio {
class io_context;
}

namespace ft::daemon {

// Calls `tick` every `period` from Start() until Stop(). After Stop() no tick runs and
// nothing is left pending on the loop. `tick` may call Stop().
class RepeatingTimer {
 public:
  RepeatingTimer(asio::io_context& io, std::chrono::steady_clock::duration period,
                 std::function<void()> tick);
  ~RepeatingTimer();
  RepeatingTimer(const RepeatingTimer&) = delete;
  RepeatingTimer& operator=(const RepeatingTimer&) = delete;

  void Start();
  void Stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Calls `on_signal` each time `signo` arrives, from Start() until Stop(); after Stop() it is
// never called and nothing is left pending. The signal is registered from construction: one
// that arrives before Start() is answered at Start(), not lost.
class SignalWatch {
 public:
  SignalWatch(asio::io_context& io, int signo, std::function<void()> on_signal);
  ~SignalWatch();
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;

  void Start();
  void Stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace ft::daemon
