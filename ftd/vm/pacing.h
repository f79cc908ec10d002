// Pacing: how far a primary's vCPU may run ahead of its backup's replay, decided from what the
// primary knows at one moment (pure: no clock, no I/O, so every case has a unit test).
//
// The flush shim holds the vCPU before its next log event once the log QEMU has written
// passes an icount limit; the primary sets that limit to the backup's acked replay position
// plus a hold point. The hold point is early enough that the run to the vCPU's next event
// fits under max_lag_ms: the event that crosses the limit can be a span as long as the longest
// recent one (QEMU writes a span's count only when the next event comes). docs/design.md,
// "Pacing", says why the limit is in the shim and not in what ftd reads.
#pragma once

#include <cstdint>

namespace ft::daemon {

// Where the vCPU is held, as a share of max_lag_ms, before the longest recent span is taken
// off (never below half of it).
inline constexpr double kHoldAt = 0.9;

// Instructions -> milliseconds of guest time under -icount shift=N (2^N ns each).
inline double GuestMs(uint64_t instructions, int icount_shift) {
  return static_cast<double>(instructions) * static_cast<double>(uint64_t{1} << icount_shift) / 1e6;
}

// Milliseconds of guest time -> instructions (rounded down) under -icount shift=N.
inline uint64_t GuestInstructions(double ms, int icount_shift) {
  if (ms <= 0) return 0;
  return static_cast<uint64_t>(ms * 1e6 / static_cast<double>(uint64_t{1} << icount_shift));
}

struct PacingInput {
  bool pace = false;              // protected, and not stopping or handing over
  uint64_t replayed_icount = 0;   // the backup's replay position, as last acked
  uint64_t lag_instructions = 0;  // log written minus replayed
  uint64_t recent_max_span = 0;   // the longest recent span between log events, instructions
  int icount_shift = 5;
  int max_lag_ms = 100;
  uint64_t unacked_bytes = 0;      // log held for the backup
  uint64_t max_unacked_bytes = 0;  // max_unacked_mib
};

struct PacingDecision {
  // The shim's icount limit: the vCPU waits before a log event past it; 0 lets it run free.
  uint64_t icount_limit = 0;
  // Reading the log: paused while more than max_unacked is held (QEMU then blocks in its
  // writes), resumed below half of it, left as it is in between.
  enum class Read { kResume, kPause, kKeep } read = Read::kResume;
  bool over_bound = false;  // the backup is more than max_lag_ms behind (worth a log line)
  double lag_ms = 0, hold_at_ms = 0, span_ms = 0;
};

PacingDecision DecidePacing(const PacingInput& in);

}  // namespace ft::daemon
