#include "ft/net/output_gate.h"

#include <algorithm>
#include <utility>

namespace ft::net {
namespace {
constexpr size_t kDelaySamples = 4096;
}

double GateStats::DelayPercentileUs(double p) const {
  if (recent_delays_us.empty()) return 0;
  std::vector<uint32_t> sorted = recent_delays_us;
  std::sort(sorted.begin(), sorted.end());
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)];
}

OutputGate::OutputGate(ReleaseFn release, GateLimits limits)
    : release_(std::move(release)), limits_(limits) {}

bool OutputGate::Submit(std::string frame, uint64_t produced, Clock::time_point now) {
  ++stats_.submitted;
  GatedFrame f;
  f.seq = next_seq_++;
  f.produced = produced;
  f.held_at = now;
  f.bytes = std::move(frame);
  if (open_) {
    f.released_open = true;
    Release(std::move(f), now);
    return true;
  }
  if (held_.size() >= limits_.max_frames ||
      stats_.held_bytes + f.bytes.size() > limits_.max_bytes) {
    ++stats_.dropped_full;
    return false;
  }
  stats_.held_bytes += f.bytes.size();
  held_.push_back(std::move(f));
  stats_.held_frames = held_.size();
  return true;
}

void OutputGate::OnLogEvents(const std::vector<replay::RrEvent>& events) {
  for (const auto& e : events) {
    // Frames are in the order of their P, so each event resolves a prefix of the rest.
    while (unresolved_ < held_.size() && held_[unresolved_].produced <= e.offset) {
      held_[unresolved_].covering_end = e.offset + e.size;
      ++unresolved_;
    }
    if (unresolved_ == held_.size()) break;
  }
}

void OutputGate::OnAcked(uint64_t acked, Clock::time_point now) {
  stats_.acked = std::max(stats_.acked, acked);
  ReleaseReady(now);
}

void OutputGate::ReleaseReady(Clock::time_point now) {
  while (!held_.empty() && held_.front().covering_end != 0 &&
         held_.front().covering_end <= stats_.acked) {
    GatedFrame f = std::move(held_.front());
    held_.pop_front();
    --unresolved_;  // the front was resolved, so it was counted
    stats_.held_bytes -= f.bytes.size();
    Release(std::move(f), now);
  }
  stats_.held_frames = held_.size();
}

void OutputGate::Open(Clock::time_point now) {
  open_ = true;
  while (!held_.empty()) {
    GatedFrame f = std::move(held_.front());
    held_.pop_front();
    f.released_open = true;
    ++stats_.released_on_open;
    Release(std::move(f), now);
  }
  unresolved_ = 0;
  stats_.held_frames = 0;
  stats_.held_bytes = 0;
}

void OutputGate::Close() { open_ = false; }

void OutputGate::Release(GatedFrame&& f, Clock::time_point now) {
  f.released_at = now;
  f.acked_at_release = stats_.acked;
  ++stats_.released;
  if (f.released_open) {
    ++stats_.released_open;
  } else {
    auto delay = now - f.held_at;
    stats_.max_delay = std::max(stats_.max_delay, delay);
    auto us = static_cast<uint32_t>(std::min<int64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(delay).count(), UINT32_MAX));
    if (stats_.recent_delays_us.size() < kDelaySamples) {
      stats_.recent_delays_us.push_back(us);
    } else {
      stats_.recent_delays_us[delay_cursor_] = us;
      delay_cursor_ = (delay_cursor_ + 1) % kDelaySamples;
    }
  }
  release_(std::move(f));
}

}  // namespace ft::net
