#include "repeating_wait.h"

#include <asio.hpp>
#include <cstdint>

namespace ft::daemon {

// Both waits count their Start()s: a completion armed before a Stop() carries an older
// generation, so it is recognised even if the wait was started again meanwhile.

struct RepeatingTimer::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, std::chrono::milliseconds p, std::function<void()> fn)
      : timer(io), period(p), tick(std::move(fn)) {}
  asio::steady_timer timer;
  std::chrono::milliseconds period;
  std::function<void()> tick;
  bool stopped = true;
  uint64_t generation = 0;

  void Arm() {
    timer.expires_after(period);
    timer.async_wait([weak = weak_from_this(), armed = generation](const std::error_code& ec) {
      auto self = weak.lock();
      // Checked, not only `ec`: a completion queued before Stop() arrives without an error.
      if (!self || ec || self->stopped || armed != self->generation) return;
      self->tick();
      if (!self->stopped && armed == self->generation) self->Arm();  // `tick` may stop us
    });
  }
};

RepeatingTimer::RepeatingTimer(asio::io_context& io, std::chrono::milliseconds period,
                               std::function<void()> tick)
    : impl_(std::make_shared<Impl>(io, period, std::move(tick))) {}

RepeatingTimer::~RepeatingTimer() { Stop(); }

void RepeatingTimer::Start() {
  if (!impl_->stopped) return;
  impl_->stopped = false;
  ++impl_->generation;
  impl_->Arm();
}

void RepeatingTimer::Stop() {
  impl_->stopped = true;
  impl_->timer.cancel();
}

struct SignalWatch::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, int signo, std::function<void()> fn)
      : signals(io, signo), on_signal(std::move(fn)) {}
  asio::signal_set signals;
  std::function<void()> on_signal;
  bool stopped = true;
  uint64_t generation = 0;

  void Arm() {
    signals.async_wait(
        [weak = weak_from_this(), armed = generation](const std::error_code& ec, int) {
          auto self = weak.lock();
          if (!self || ec || self->stopped || armed != self->generation) return;
          self->on_signal();
          if (!self->stopped && armed == self->generation) self->Arm();
        });
  }
};

SignalWatch::SignalWatch(asio::io_context& io, int signo, std::function<void()> on_signal)
    : impl_(std::make_shared<Impl>(io, signo, std::move(on_signal))) {}

SignalWatch::~SignalWatch() { Stop(); }

void SignalWatch::Start() {
  if (!impl_->stopped) return;
  impl_->stopped = false;
  ++impl_->generation;
  impl_->Arm();
}

void SignalWatch::Stop() {
  impl_->stopped = true;
  std::error_code ignored;
  impl_->signals.cancel(ignored);
}

}  // namespace ft::daemon
