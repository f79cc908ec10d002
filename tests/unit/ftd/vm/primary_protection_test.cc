// The primary's behaviour with fakes and a clock stepped by hand: the log is held until acked
// and a backup that connects gets all of it, output is released only as far as acks reach,
// pacing holds the vCPU and an ack lets it go, a planned failover drains the whole log, and
// every way of losing the backup -- a closed channel, a replay that stands still, one that
// never connects -- is handed to the authority.
#include "primary_protection.h"

#include <gtest/gtest.h>

#include "fakes.h"
#include "pacing.h"

namespace ft::daemon {
namespace {

using arbiter::FtState;
using namespace std::chrono_literals;
using testing::FakeAuthority;
using testing::FakeGate;
using testing::FakeLink;
using testing::FakeRecordLog;
using testing::FakeTime;

// Shift 5: 32 ns per instruction; max_lag_ms 100 holds the vCPU 90 ms (2,812,500
// instructions) past the backup's replay position (pacing.h).
constexpr uint64_t kHoldAfter = 2'812'500;

class PrimaryProtectionTest : public ::testing::Test {
 protected:
  PrimaryProtectionTest() : vlog(testing::QuietLog()), protection(Ports(), Limits(), vlog) {
    protection.OnBackupLost([this](const Status& why) { lost.push_back(why.ToString()); });
  }
  PrimaryPorts Ports() { return PrimaryPorts{&time, &authority, &log, &gate}; }
  static PrimaryLimits Limits() {
    PrimaryLimits limits;
    limits.max_unacked_bytes = 1000;
    limits.max_lag_ms = 100;
    limits.icount_shift = 5;
    limits.replay_stall_timeout = 5s;
    return limits;
  }
  // The recorder wrote and ftd read `bytes` more log at the end, covering `icount` more.
  void Record(const std::string& bytes, uint64_t icount = 0) {
    uint64_t offset = end;
    end += bytes.size();
    at_icount += icount;
    log.Wrote(end, at_icount);
    log.Read(end, at_icount);
    protection.OnLog(offset, bytes);
  }
  void Connect() { protection.OnBackupConnected(&link); }
  void Protect() {
    Connect();
    ASSERT_EQ(authority.state(), FtState::kProtected);
  }

  FakeTime time;
  FakeAuthority authority;
  FakeRecordLog log;
  FakeGate gate;
  FakeLink link;
  VmLog vlog;
  PrimaryProtection protection;
  std::vector<std::string> lost;
  uint64_t end = 0, at_icount = 0;
};

TEST_F(PrimaryProtectionTest, EveryLogByteIsHeldUntilABackupConnectsAndThenSentFromTheStart) {
  Record("aaa");
  Record("bbbb");
  EXPECT_EQ(protection.unacked_bytes(), 7u);
  EXPECT_TRUE(link.sent.empty());
  Connect();
  EXPECT_EQ(authority.calls, (std::vector<std::string>{"PeerConnected"}));
  EXPECT_EQ(link.Bytes(), "aaabbbb");
  Record("cc");  // once connected, each read goes out as it comes
  EXPECT_EQ(link.Bytes(), "aaabbbbcc");
  EXPECT_EQ(protection.unacked_bytes(), 9u);
}

TEST_F(PrimaryProtectionTest, OutputIsReleasedOnlyAsFarAsTheBackupAcked) {
  Protect();
  Record(std::string(100, 'x'));
  EXPECT_TRUE(gate.released.empty()) << "nothing leaves before an ack";
  protection.OnAck(40, 0);
  EXPECT_EQ(gate.released, (std::vector<uint64_t>{40}));
  protection.OnAck(30, 0);  // late or repeated: never backwards
  protection.OnAck(40, 0);
  EXPECT_EQ(gate.released, (std::vector<uint64_t>{40}));
  protection.OnAck(100, 0);
  EXPECT_EQ(gate.released, (std::vector<uint64_t>{40, 100}));
  EXPECT_EQ(protection.acked(), 100u);
  EXPECT_EQ(protection.unacked_bytes(), 0u);
}

TEST_F(PrimaryProtectionTest, PacingHoldsTheVcpuAheadOfTheReplayAndAnAckReleasesIt) {
  Protect();
  Record("event", 10'000'000);  // 320 ms of guest time ahead of a replay at 0
  EXPECT_EQ(log.limit, kHoldAfter);
  EXPECT_TRUE(protection.vcpu_held());
  EXPECT_EQ(protection.vcpu_held_since(), time.Now());
  time.Advance(30ms);
  protection.OnAck(5, 8'000'000);  // the backup replayed to within 64 ms
  EXPECT_EQ(log.limit, 8'000'000 + kHoldAfter);
  EXPECT_FALSE(protection.vcpu_held());
  EXPECT_EQ(protection.lag_instructions(), 2'000'000u);
}

TEST_F(PrimaryProtectionTest, OnlyAProtectedPairIsPaced) {
  Record("event", 10'000'000);  // waiting for the backup: the vCPU runs free
  EXPECT_EQ(log.limit, 0u);
  Protect();
  EXPECT_EQ(log.limit, 0u) << "the limit is set at the next pacing step";
  protection.OnTick();
  EXPECT_EQ(log.limit, kHoldAfter);
  protection.BeginHandover();  // a vCPU held in a log write could not stop
  EXPECT_EQ(log.limit, 0u);
  protection.EndHandover();
  EXPECT_EQ(log.limit, kHoldAfter);
  protection.Stopping();  // QEMU's last writes must not block its exit
  EXPECT_EQ(log.limit, 0u);
}

TEST_F(PrimaryProtectionTest, ReadingPausesWhileTooMuchLogIsHeldAndResumesBelowHalf) {
  Protect();
  Record(std::string(900, 'x'));
  EXPECT_TRUE(log.reading);
  Record(std::string(200, 'y'));  // 1100 held, over max_unacked
  EXPECT_FALSE(log.reading);
  protection.OnAck(700, 0);  // 400 held: under half
  EXPECT_TRUE(log.reading);
}

TEST_F(PrimaryProtectionTest, AClosedChannelIsHandedToTheAuthorityAndTheHeldLogDropped) {
  Protect();
  Record("abc", 10'000'000);
  protection.OnLinkLost(Unavailable("heartbeat timeout after 1000 ms"));
  EXPECT_EQ(authority.calls.back(), "PeerLost: unavailable: heartbeat timeout after 1000 ms");
  EXPECT_EQ(authority.state(), FtState::kArbitrating);
  EXPECT_EQ(lost.size(), 1u);
  EXPECT_TRUE(link.closed);
  EXPECT_FALSE(protection.connected());
  EXPECT_EQ(protection.unacked_bytes(), 0u);
  EXPECT_EQ(log.limit, 0u) << "no pacing without a backup";
  EXPECT_TRUE(gate.released.empty()) << "held output is the authority's to release";
  size_t sent = link.sent.size();
  Record("def");
  EXPECT_EQ(link.sent.size(), sent);
  EXPECT_EQ(protection.unacked_bytes(), 0u);
}

TEST_F(PrimaryProtectionTest, AReplayThatStandsStillWhileTheVcpuIsHeldLosesTheBackup) {
  Protect();
  Record("event", 10'000'000);
  ASSERT_TRUE(protection.vcpu_held());
  for (int i = 0; i < 49; ++i) {  // 4.9 s of acks that do not move the replay
    time.Advance(100ms);
    protection.OnAck(5, 0);
    protection.OnTick();
  }
  EXPECT_TRUE(lost.empty());
  time.Advance(100ms);
  protection.OnTick();
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_NE(authority.calls.back().find("the backup's replay made no progress for 5 s"),
            std::string::npos)
      << authority.calls.back();
  EXPECT_TRUE(link.closed);
}

TEST_F(PrimaryProtectionTest, AReplayThatMovesKeepsItsBackupHoweverLongTheVcpuWaits) {
  Protect();
  Record("event", 100'000'000);
  for (int i = 1; i <= 100; ++i) {  // 10 s held, the replay moving a little every second
    time.Advance(100ms);
    if (i % 10 == 0) protection.OnAck(5, uint64_t(i) * 1000);
    protection.OnTick();
  }
  EXPECT_TRUE(lost.empty());
  EXPECT_TRUE(protection.vcpu_held());
}

TEST_F(PrimaryProtectionTest, ABackupThatNeverConnectsIsGivenUpOnceTooMuchLogWaits) {
  Record(std::string(600, 'x'));
  EXPECT_TRUE(authority.calls.empty());
  Record(std::string(600, 'y'));
  ASSERT_EQ(authority.calls.size(), 1u);
  EXPECT_EQ(authority.calls[0],
            "GiveUpWaiting: the backup did not connect before 0 MiB of log accumulated "
            "(max_unacked_mib)");
  EXPECT_EQ(protection.unacked_bytes(), 0u);
}

TEST_F(PrimaryProtectionTest, AHandoverIsDoneOnlyWhenTheWholeLogIsReadAndAcked) {
  Protect();
  Record(std::string(80, 'x'));
  log.Wrote(100, 0);  // QEMU wrote 20 bytes ftd has not read yet
  protection.BeginHandover();
  const SteadyTime deadline = time.Now() + 2s;
  EXPECT_EQ(protection.CheckDrain(deadline), PrimaryProtection::Drain::kWaiting);
  protection.OnAck(80, 0);
  EXPECT_EQ(protection.CheckDrain(deadline), PrimaryProtection::Drain::kWaiting);
  Record(std::string(20, 'y'));
  EXPECT_EQ(protection.CheckDrain(deadline), PrimaryProtection::Drain::kWaiting);
  protection.OnAck(100, 0);
  EXPECT_EQ(protection.CheckDrain(deadline), PrimaryProtection::Drain::kDone);
  EXPECT_EQ(gate.released.back(), 100u);
  // The stopped recorder's checkpoints after the drained end are never sent.
  size_t sent = link.sent.size();
  Record("checkpoint");
  EXPECT_EQ(link.sent.size(), sent);
}

TEST_F(PrimaryProtectionTest, AHandoverTimesOutOrLosesItsBackup) {
  Protect();
  Record(std::string(50, 'x'));
  protection.BeginHandover();
  const SteadyTime deadline = time.Now() + 2s;
  time.Advance(1999ms);
  EXPECT_EQ(protection.CheckDrain(deadline), PrimaryProtection::Drain::kWaiting);
  time.Advance(1ms);
  EXPECT_EQ(protection.CheckDrain(deadline), PrimaryProtection::Drain::kTimedOut);
  protection.EndHandover();
  EXPECT_FALSE(protection.handing_over());

  protection.BeginHandover();
  protection.OnLinkLost(Unavailable("channel closed"));
  EXPECT_EQ(protection.CheckDrain(time.Now() + 2s), PrimaryProtection::Drain::kBackupLost);
}

TEST_F(PrimaryProtectionTest, BeforeQemuOpensItsLogNothingIsSetInTheShim) {
  log.mapped = false;
  Protect();
  Record("event", 10'000'000);
  protection.OnTick();
  EXPECT_EQ(log.limit, 0u);
  EXPECT_FALSE(protection.vcpu_held());
  log.mapped = true;
  protection.OnTick();
  EXPECT_EQ(log.limit, kHoldAfter);
}

}  // namespace
}  // namespace ft::daemon
