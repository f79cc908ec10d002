#include "loop_watchdog.h"

#include <asio.hpp>

#include "ft/log.h"

namespace ft::daemon {

std::optional<std::chrono::milliseconds> StallMeter::Tick(Clock::time_point due,
                                                          Clock::time_point ran) {
  if (ran <= due) return std::nullopt;
  auto late = std::chrono::duration_cast<std::chrono::milliseconds>(ran - due);
  worst_ = std::max(worst_, late);
  if (late <= threshold_) return std::nullopt;
  ++stalls_;
  return late;
}

struct LoopWatchdog::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, std::chrono::milliseconds p, std::chrono::milliseconds threshold)
      : timer(io), period(p), meter(threshold) {}
  asio::steady_timer timer;
  std::chrono::milliseconds period;
  StallMeter meter;
  bool stopped = false;

  void Arm() {
    if (stopped) return;
    auto due = StallMeter::Clock::now() + period;
    timer.expires_at(due);
    timer.async_wait([weak = weak_from_this(), due](const std::error_code& ec) {
      auto self = weak.lock();
      if (!self || ec || self->stopped) return;
      if (auto late = self->meter.Tick(due, StallMeter::Clock::now())) {
        Logger("ftd")->warn(
            "event loop stalled for {} ms (a handler blocked it; peers see no "
            "heartbeat meanwhile); {} stall(s) so far",
            late->count(), self->meter.stalls());
      }
      self->Arm();
    });
  }
};

LoopWatchdog::LoopWatchdog(asio::io_context& io, std::chrono::milliseconds period,
                           std::chrono::milliseconds threshold)
    : impl_(std::make_shared<Impl>(io, period, threshold)) {}

LoopWatchdog::~LoopWatchdog() { Stop(); }

void LoopWatchdog::Start() {
  impl_->stopped = false;
  impl_->Arm();
}

void LoopWatchdog::Stop() {
  impl_->stopped = true;
  impl_->timer.cancel();
}

const StallMeter& LoopWatchdog::meter() const { return impl_->meter; }

}  // namespace ft::daemon
