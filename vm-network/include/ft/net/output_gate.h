// The output gate (design rule 2): no frame the primary's guest sends leaves the host until
// the backup has acked the log that covers it. Pure logic: frames, log boundaries and acks
// in; released frames out, in order. No sockets, no clock of its own.
//
// Which log covers a frame: a frame leaves QEMU (e1000 TX, in the vCPU thread) before the
// INSTRUCTION span that contains it is written, because a span is written only when the next
// event comes. So the log position P that QEMU had written when ftd read the frame is not
// enough: the frame is covered once the backup has the first complete event that starts at
// or after P. A backup that has replayed that event has executed past the send, so after a
// failover it is never behind what a client has seen.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "ft/replay/rr_log.h"

namespace ft::net {

using Clock = std::chrono::steady_clock;

struct GateLimits {
  size_t max_frames = 4096;     // held frames; more are dropped (TCP sends them again)
  size_t max_bytes = 16 << 20;  // held bytes
};

// A frame on its way out, with what the gate decided about it.
struct GatedFrame {
  std::string bytes;
  uint64_t seq = 0;           // 1, 2, ... in the order the guest sent them
  uint64_t produced = 0;      // log bytes QEMU had written when the frame was read (P)
  uint64_t covering_end = 0;  // end of the first event starting at or after P; 0 = not yet
  uint64_t acked_at_release = 0;
  bool released_open = false;  // released because the gate was open (no backup)
  Clock::time_point held_at{}, released_at{};
};

struct GateStats {
  uint64_t submitted = 0, released = 0, released_open = 0, dropped_full = 0;
  uint64_t released_on_open = 0;  // of released_open: frames held when the gate opened
  uint64_t held_frames = 0, held_bytes = 0;
  uint64_t acked = 0;  // log bytes the backup has acked
  Clock::duration max_delay{};
  // Hold times of the last frames released while gated, microseconds (for p50/p99).
  std::vector<uint32_t> recent_delays_us;
  double DelayPercentileUs(double p) const;  // 0 when none
};

class OutputGate {
 public:
  using ReleaseFn = std::function<void(GatedFrame&&)>;
  OutputGate(ReleaseFn release, GateLimits limits = {});

  // A frame the guest sent while QEMU had written `produced` log bytes. Released at once
  // when the gate is open; false when it had to be dropped because the gate is full.
  bool Submit(std::string frame, uint64_t produced, Clock::time_point now);
  // Complete events the primary's log tap parsed, in log order.
  void OnLogEvents(const std::vector<replay::RrEvent>& events);
  // The backup has received the log up to `acked`.
  void OnAcked(uint64_t acked, Clock::time_point now);
  // Unprotected (no backup): release everything held, in order, and pass frames from now on.
  void Open(Clock::time_point now);
  // Protected again: hold frames from now on.
  void Close();
  bool open() const { return open_; }
  const GateStats& stats() const { return stats_; }

 private:
  void ReleaseReady(Clock::time_point now);
  void Release(GatedFrame&& frame, Clock::time_point now);

  ReleaseFn release_;
  GateLimits limits_;
  bool open_ = false;
  std::deque<GatedFrame> held_;
  size_t unresolved_ = 0;  // index of the first held frame without covering_end
  uint64_t next_seq_ = 1;
  size_t delay_cursor_ = 0;
  GateStats stats_;
};

}  // namespace ft::net
