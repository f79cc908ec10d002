#include "repeating_wait.h"

#include <asio.hpp>
#include <cstdint>

namespace ft::daemon {

namespace {

// Whether a wait runs, and which Start() a completion belongs to: one armed before a Stop()
// carries an older generation, so it is recognised even if the wait was started again since.
struct Run {
  bool stopped = true;
  uint64_t generation = 0;

  bool Begin() {
    if (!stopped) return false;
    stopped = false;
    ++generation;
    return true;
  }
  // Checked, not only the error code: a completion queued before Stop() has none.
  bool Live(uint64_t armed) const { return !stopped && armed == generation; }
};

}  // namespace

struct RepeatingTimer::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, std::chrono::steady_clock::duration p, std::function<void()> fn)
      : timer(io), period(p), tick(std::move(fn)) {}
  asio::steady_timer timer;
  std::chrono::steady_clock::duration period;
  std::function<void()> tick;
  Run run;

  void Arm() {
    timer.expires_after(period);
    timer.async_wait([weak = weak_from_this(), armed = run.generation](const std::error_code& ec) {
      auto self = weak.lock();
      if (!self || ec || !self->run.Live(armed)) return;
      self->tick();
      if (self->run.Live(armed)) self->Arm();  // `tick` may have stopped it
    });
  }
};

RepeatingTimer::RepeatingTimer(asio::io_context& io, std::chrono::steady_clock::duration period,
                               std::function<void()> tick)
    : impl_(std::make_shared<Impl>(io, period, std::move(tick))) {}

RepeatingTimer::~RepeatingTimer() { Stop(); }

void RepeatingTimer::Start() {
  if (impl_->run.Begin()) impl_->Arm();
}

void RepeatingTimer::Stop() {
  impl_->run.stopped = true;
  impl_->timer.cancel();
}

struct SignalWatch::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, int signo, std::function<void()> fn)
      : signals(io, signo), on_signal(std::move(fn)) {}
  asio::signal_set signals;
  std::function<void()> on_signal;
  Run run;

  void Arm() {
    signals.async_wait(
        [weak = weak_from_this(), armed = run.generation](const std::error_code& ec, int) {
          auto self = weak.lock();
          if (!self || ec || !self->run.Live(armed)) return;
          self->on_signal();
          if (self->run.Live(armed)) self->Arm();  // `on_signal` may have stopped it
        });
  }
};

SignalWatch::SignalWatch(asio::io_context& io, int signo, std::function<void()> on_signal)
    : impl_(std::make_shared<Impl>(io, signo, std::move(on_signal))) {}

SignalWatch::~SignalWatch() { Stop(); }

void SignalWatch::Start() {
  if (impl_->run.Begin()) impl_->Arm();
}

void SignalWatch::Stop() {
  impl_->run.stopped = true;
  std::error_code ignored;
  impl_->signals.cancel(ignored);
}

}  // namespace ft::daemon
