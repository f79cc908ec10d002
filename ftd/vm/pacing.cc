#include "pacing.h"

#include <algorithm>

namespace ft::daemon {

PacingDecision DecidePacing(const PacingInput& in) {
  PacingDecision d;
  d.lag_ms = GuestMs(in.lag_instructions, in.icount_shift);
  d.span_ms = GuestMs(in.recent_max_span, in.icount_shift);
  const double bound = in.max_lag_ms;
  d.hold_at_ms = std::max(bound / 2, bound * kHoldAt - d.span_ms);
  // At least one instruction past the replay position: a vCPU held right after a span
  // would otherwise wait for a replayer that stops one instruction before that span's end.
  uint64_t hold_after = std::max<uint64_t>(1, GuestInstructions(d.hold_at_ms, in.icount_shift));
  d.icount_limit = in.pace ? in.replayed_icount + hold_after : 0;
  d.over_bound = in.pace && d.lag_ms > bound;
  if (!in.pace || in.unacked_bytes < in.max_unacked_bytes / 2) {
    d.read = PacingDecision::Read::kResume;
  } else if (in.unacked_bytes > in.max_unacked_bytes) {
    d.read = PacingDecision::Read::kPause;
  } else {
    d.read = PacingDecision::Read::kKeep;
  }
  return d;
}

}  // namespace ft::daemon
