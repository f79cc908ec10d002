// Pacing: the vCPU's icount limit follows the backup's acked replay position, holds it early
// enough that the next span fits under max_lag_ms, lets go when the pair is not protected, and
// stops reading the log only when too much of it is held.
#include "pacing.h"

#include <gtest/gtest.h>

namespace ft::daemon {
namespace {

// Shift 5: 32 ns per instruction, so 1 ms of guest time is 31250 instructions.
PacingInput Protected() {
  PacingInput in;
  in.pace = true;
  in.icount_shift = 5;
  in.max_lag_ms = 100;
  in.replayed_icount = 1'000'000;
  in.max_unacked_bytes = 64u << 20;
  return in;
}

TEST(PacingTest, GuestTimeAndInstructionsConvertUnderTheShift) {
  EXPECT_DOUBLE_EQ(GuestMs(31250, 5), 1.0);
  EXPECT_EQ(GuestInstructions(1.0, 5), 31250u);
  EXPECT_EQ(GuestInstructions(-1, 5), 0u);
  EXPECT_DOUBLE_EQ(GuestMs(1'000'000, 0), 1.0);
}

TEST(PacingTest, AProtectedVcpuIsHeldAtTheHoldPointPastTheReplayPosition) {
  PacingDecision d = DecidePacing(Protected());
  EXPECT_DOUBLE_EQ(d.hold_at_ms, 90);  // kHoldAt of max_lag_ms with no long span
  EXPECT_EQ(d.icount_limit, 1'000'000u + GuestInstructions(90, 5));
  EXPECT_FALSE(d.over_bound);
}

TEST(PacingTest, TheLimitMovesWithEveryAck) {
  PacingInput in = Protected();
  uint64_t before = DecidePacing(in).icount_limit;
  in.replayed_icount += 5000;
  EXPECT_EQ(DecidePacing(in).icount_limit, before + 5000);
}

TEST(PacingTest, ALongRecentSpanHoldsEarlierButNeverBeforeHalfTheBound) {
  PacingInput in = Protected();
  in.recent_max_span = GuestInstructions(30, 5);  // 30 ms between log events
  EXPECT_NEAR(DecidePacing(in).hold_at_ms, 60, 1e-6);
  in.recent_max_span = GuestInstructions(80, 5);
  EXPECT_DOUBLE_EQ(DecidePacing(in).hold_at_ms, 50);
}

TEST(PacingTest, TheHoldIsAtLeastOneInstructionPastTheReplayPosition) {
  PacingInput in = Protected();
  in.max_lag_ms = 0;  // not a config value, but the rule must hold anyway
  EXPECT_EQ(DecidePacing(in).icount_limit, in.replayed_icount + 1);
}

TEST(PacingTest, NotProtectedLetsTheVcpuRunAndTheLogBeRead) {
  PacingInput in = Protected();
  in.pace = false;  // waiting for a backup, arbitrating, stopping or handing over
  in.lag_instructions = GuestInstructions(500, 5);
  in.unacked_bytes = in.max_unacked_bytes * 2;
  PacingDecision d = DecidePacing(in);
  EXPECT_EQ(d.icount_limit, 0u);
  EXPECT_EQ(d.read, PacingDecision::Read::kResume);
  EXPECT_FALSE(d.over_bound) << "an unpaced VM has no bound to report";
}

TEST(PacingTest, ABackupPastTheBoundIsReported) {
  PacingInput in = Protected();
  in.lag_instructions = GuestInstructions(101, 5);
  PacingDecision d = DecidePacing(in);
  EXPECT_TRUE(d.over_bound);
  EXPECT_NEAR(d.lag_ms, 101, 1e-3);
}

TEST(PacingTest, ReadingPausesOverMaxUnackedAndResumesBelowHalf) {
  PacingInput in = Protected();
  in.unacked_bytes = in.max_unacked_bytes + 1;
  EXPECT_EQ(DecidePacing(in).read, PacingDecision::Read::kPause);
  in.unacked_bytes = in.max_unacked_bytes * 3 / 4;  // between: as it was
  EXPECT_EQ(DecidePacing(in).read, PacingDecision::Read::kKeep);
  in.unacked_bytes = in.max_unacked_bytes / 2 - 1;
  EXPECT_EQ(DecidePacing(in).read, PacingDecision::Read::kResume);
}

}  // namespace
}  // namespace ft::daemon
