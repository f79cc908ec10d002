// Every ordering of the failures that matter, with two arbiters (a primary and a backup)
// sharing one fake claim store and a fake clock: the primary dies, the backup dies, the
// channel partitions, storage is unreachable, both race, a host returns after a failover,
// the operator turns FT off, ftd stops. Never two live copies. The randomized schedules are
// in schedule_test.cc.
#include "ft/arbiter/vm_arbiter.h"

#include <gtest/gtest.h>

#include <deque>

#include "fake_test_and_set.h"

namespace ft::arbiter {
namespace {

using namespace std::chrono_literals;
using shared_disk::ClaimRequest;

// The daemon's side, recorded: claims wait in a queue until the test delivers them.
struct Host : Actions {
  std::deque<ClaimRequest> claims;
  int reads = 0;  // store reads asked for, not yet answered
  bool gate_open = false, halted = false;
  std::optional<uint64_t> went_live, started, recorded;
  std::string halt_why;
  void ReadStore() override { ++reads; }
  void Claim(const ClaimRequest& r) override { claims.push_back(r); }
  Status RecordEpoch(uint64_t epoch) override {
    recorded = epoch;
    return Status::Ok();
  }
  void StartCopy(uint64_t epoch) override { started = epoch; }
  void OpenGate() override { gate_open = true; }
  void GoLive(uint64_t epoch) override { went_live = epoch; }
  void Halt(const std::string& why) override {
    halted = true;
    halt_why = why;
  }
};

struct Pair : ::testing::Test {
  fakes::FakeTestAndSet storage;
  Host a, b;
  TimePoint t = TimePoint{} + 1h;
  VmArbiter primary{{"web1", "hostA", true, 200ms}, Role::kPrimary, 1, a};
  VmArbiter backup{{"web1", "hostB", true, 200ms}, Role::kBackup, 1, b};

  // Answers one store read `host` asked for.
  void ReadStore(Host& host, VmArbiter& arbiter) {
    ASSERT_GT(host.reads, 0);
    --host.reads;
    arbiter.OnStoreRead(ReadStoreView(storage, "web1"), t);
  }
  // Both copies start: each reads the store, then runs.
  void StartBoth() {
    primary.Start(t);
    backup.Start(t);
    EXPECT_FALSE(a.started) << "a copy runs before the store was read";
    ReadStore(a, primary);
    ReadStore(b, backup);
    ASSERT_EQ(a.started, 1u);
    ASSERT_EQ(b.started, 1u);
  }
  void Connect() {
    StartBoth();
    primary.OnPeerConnected(t);
    backup.OnPeerConnected(t);
    ASSERT_EQ(primary.state(), FtState::kProtected);
    ASSERT_EQ(backup.state(), FtState::kProtected);
  }
  // Runs the oldest claim `host` sent against the store and tells `arbiter`.
  void Deliver(Host& host, VmArbiter& arbiter) {
    ASSERT_FALSE(host.claims.empty());
    auto request = host.claims.front();
    host.claims.pop_front();
    arbiter.OnClaimResult(storage.Claim(request), t);
  }
  // Whatever happened: at most one copy serves clients outside lockstep.
  void ExpectAtMostOneLive() {
    bool primary_alone = primary.state() == FtState::kUnprotected && !a.halted;
    bool backup_live =
        backup.state() == FtState::kGoingLive || backup.state() == FtState::kUnprotected;
    EXPECT_FALSE(primary_alone && backup_live) << "two live copies";
    EXPECT_FALSE(a.gate_open && b.went_live.has_value()) << "two live copies";
  }
};

TEST_F(Pair, PrimaryDiesTheBackupReplaysWinsAndGoesLiveInTheNextEpoch) {
  Connect();
  t += 1s;
  backup.OnPeerLost("no frame for 1000 ms", t);
  EXPECT_EQ(backup.state(), FtState::kArbitrating);
  ASSERT_EQ(b.claims.size(), 1u);
  EXPECT_EQ(b.claims.front().epoch, 2u);
  EXPECT_EQ(b.claims.front().node, "hostB");
  Deliver(b, backup);
  EXPECT_FALSE(b.went_live) << "won, but has not replayed everything received yet";
  backup.OnCaughtUp(t);
  ASSERT_TRUE(b.went_live);
  EXPECT_EQ(*b.went_live, 2u);
  EXPECT_EQ(backup.state(), FtState::kGoingLive);
  backup.OnGoLiveDone(Status::Ok(), t + 600ms);
  EXPECT_EQ(backup.state(), FtState::kUnprotected);
  EXPECT_EQ(backup.epoch(), 2u);
  EXPECT_EQ(*backup.live_at - *backup.peer_lost_at, 600ms);
}

TEST_F(Pair, CatchingUpBeforeTheClaimIsDecidedWaitsForTheClaim) {
  Connect();
  backup.OnPeerLost("closed", t);
  backup.OnCaughtUp(t);
  EXPECT_FALSE(b.went_live);
  Deliver(b, backup);
  EXPECT_TRUE(b.went_live);
}

TEST_F(Pair, BackupDiesThePrimaryWinsBeforeItsGateOpens) {
  Connect();
  primary.OnPeerLost("connection reset", t);
  EXPECT_EQ(primary.state(), FtState::kArbitrating);
  EXPECT_FALSE(a.gate_open) << "output must wait for the claim";
  Deliver(a, primary);
  EXPECT_TRUE(a.gate_open);
  EXPECT_EQ(primary.state(), FtState::kUnprotected);
  EXPECT_EQ(primary.epoch(), 2u);
  auto record = storage.Read("web1", 2);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->winner, "hostA");
}

TEST_F(Pair, PartitionBothRaceThePrimaryFirstTheBackupHalts) {
  Connect();
  primary.OnPeerLost("no frame for 1000 ms", t);
  backup.OnPeerLost("no frame for 1000 ms", t);
  Deliver(a, primary);
  Deliver(b, backup);
  backup.OnCaughtUp(t);
  EXPECT_TRUE(a.gate_open);
  EXPECT_TRUE(b.halted);
  EXPECT_FALSE(b.went_live);
  EXPECT_NE(b.halt_why.find("lost epoch 2 to 'hostA'"), std::string::npos) << b.halt_why;
  ExpectAtMostOneLive();
}

TEST_F(Pair, PartitionBothRaceTheBackupFirstThePrimaryHaltsWithItsOutputHeld) {
  Connect();
  backup.OnPeerLost("no frame for 1000 ms", t);
  primary.OnPeerLost("no frame for 1000 ms", t);
  Deliver(b, backup);
  Deliver(a, primary);
  backup.OnCaughtUp(t);
  EXPECT_TRUE(a.halted);
  EXPECT_FALSE(a.gate_open) << "the held output of a losing primary never leaves";
  EXPECT_TRUE(b.went_live);
  ExpectAtMostOneLive();
}

TEST_F(Pair, StorageUnreachableNobodyGoesLiveUntilItReturns) {
  Connect();
  storage.SetUnreachable(true);
  primary.OnPeerLost("no frame for 1000 ms", t);
  backup.OnPeerLost("no frame for 1000 ms", t);
  backup.OnCaughtUp(t);
  for (int i = 0; i < 20; ++i) {
    while (!a.claims.empty()) Deliver(a, primary);
    while (!b.claims.empty()) Deliver(b, backup);
    t += 100ms;
    primary.OnTick(t);
    backup.OnTick(t);
    EXPECT_FALSE(a.gate_open);
    EXPECT_FALSE(b.went_live);
    EXPECT_FALSE(a.halted || b.halted);
  }
  EXPECT_GE(primary.claims_sent(), 9);  // retried every 200 ms for 2 s
  EXPECT_NE(primary.note().find("not decided"), std::string::npos) << primary.note();
  storage.SetUnreachable(false);
  t += 200ms;
  backup.OnTick(t);  // the backup's retry reaches the store first
  primary.OnTick(t);
  Deliver(b, backup);
  Deliver(a, primary);
  EXPECT_TRUE(b.went_live);
  EXPECT_TRUE(a.halted);
  ExpectAtMostOneLive();
}

TEST_F(Pair, AFullStoreIsNotAWinButTheLoserStillLearnsItLost) {
  Connect();
  primary.OnPeerLost("closed", t);
  Deliver(a, primary);  // the primary wins epoch 2
  storage.SetFull(true);
  backup.OnPeerLost("closed", t);
  Deliver(b, backup);  // reading the winner's record needs no space
  EXPECT_TRUE(b.halted);
  ExpectAtMostOneLive();
}

TEST_F(Pair, AFailedGoLiveHaltsAndNobodyElseCanTakeTheEpoch) {
  Connect();
  backup.OnPeerLost("closed", t);
  Deliver(b, backup);
  backup.OnCaughtUp(t);
  backup.OnGoLiveDone(Internal("savevm failed"), t);
  EXPECT_EQ(backup.state(), FtState::kHalted);
  EXPECT_TRUE(b.halted);
  primary.OnPeerLost("closed", t);  // a primary that was only partitioned
  Deliver(a, primary);
  EXPECT_TRUE(a.halted) << "epoch 2 belongs to hostB even though it failed";
}

TEST_F(Pair, APrimaryThatNeverHadABackupClaimsBeforeItRunsAlone) {
  StartBoth();
  primary.OnGiveUpWaiting("the backup did not connect before 64 MiB of log", t);
  EXPECT_FALSE(a.gate_open) << "no gate opens without a won claim";
  EXPECT_EQ(primary.state(), FtState::kArbitrating);
  ASSERT_EQ(a.claims.size(), 1u);
  EXPECT_EQ(a.claims.front().epoch, 2u);
  Deliver(a, primary);
  EXPECT_TRUE(a.gate_open);
  EXPECT_EQ(primary.epoch(), 2u);
  EXPECT_EQ(a.recorded, 2u);
  // A backup that was never protected does not arbitrate when its channel drops.
  backup.OnPeerLost("closed", t);
  EXPECT_TRUE(b.claims.empty());
  EXPECT_EQ(backup.state(), FtState::kWaitingForPeer);
}

// The split brain of the issue: host A returns after B went live, with its old config.
TEST_F(Pair, AHostThatReturnsAfterAFailoverIsStaleAndNeverRuns) {
  storage.Put({1, "web1", 2, "hostB", "primary lost: no frame for 1000 ms", 1'700'000'123'000});
  primary.Start(t);
  ReadStore(a, primary);
  EXPECT_EQ(primary.state(), FtState::kStale);
  EXPECT_FALSE(a.started) << "a stale copy started";
  EXPECT_FALSE(a.halted) << "nothing ran, nothing to halt";
  EXPECT_NE(primary.note().find("went live on 'hostB' in epoch 2"), std::string::npos)
      << primary.note();
  ASSERT_TRUE(primary.newest_claim());
  EXPECT_EQ(primary.newest_claim()->winner, "hostB");
  // Nothing it is told afterwards makes it run or open a gate.
  primary.OnGiveUpWaiting("64 MiB", t);
  primary.OnPeerConnected(t);
  primary.OnPeerLost("closed", t);
  EXPECT_FALSE(primary.OnTurnFtOff("ftctl disable", t).ok());
  EXPECT_TRUE(a.claims.empty());
  EXPECT_FALSE(a.gate_open);
  EXPECT_EQ(primary.state(), FtState::kStale);
}

TEST_F(Pair, ABackupBehindTheNewestEpochIsStaleWhoeverWonIt) {
  storage.Put({1, "web1", 2, "hostA", "backup lost: closed", 0});
  backup.Start(t);
  ReadStore(b, backup);
  EXPECT_EQ(backup.state(), FtState::kStale);
  EXPECT_FALSE(b.started);
}

TEST_F(Pair, APrimaryThatWonAnEpochItDidNotRecordAdoptsIt) {
  storage.Put({1, "web1", 2, "hostA", "backup lost: closed", 0});
  primary.Start(t);
  ReadStore(a, primary);
  EXPECT_EQ(a.started, 2u);
  EXPECT_EQ(a.recorded, 2u);
  EXPECT_EQ(primary.epoch(), 2u);
}

TEST_F(Pair, AnUnreadableStoreKeepsTheCopyFromStarting) {
  storage.SetUnreachable(true);
  primary.Start(t);
  for (int i = 0; i < 10; ++i) {
    while (a.reads > 0) ReadStore(a, primary);
    t += 100ms;
    primary.OnTick(t);
  }
  EXPECT_FALSE(a.started);
  EXPECT_EQ(primary.state(), FtState::kCheckingStore);
  EXPECT_NE(primary.note().find("not readable"), std::string::npos) << primary.note();
  storage.SetUnreachable(false);
  t += 200ms;
  primary.OnTick(t);
  ReadStore(a, primary);
  EXPECT_EQ(a.started, 1u);
}

TEST_F(Pair, AWaitingPrimaryThatLearnsItIsStaleHaltsWithItsGateShut) {
  StartBoth();
  storage.Put({1, "web1", 2, "hostB", "primary lost", 0});
  primary.CheckStoreAgain(t);
  ReadStore(a, primary);
  EXPECT_EQ(primary.state(), FtState::kStale);
  EXPECT_TRUE(a.halted);
  EXPECT_FALSE(a.gate_open);
}

TEST_F(Pair, TurningFtOffClaimsFirstAndAPartitionedBackupMayWin) {
  Connect();
  // disable --force while the channel is cut: the backup is claiming too.
  backup.OnPeerLost("no frame for 1000 ms", t);
  Deliver(b, backup);
  ASSERT_TRUE(primary.OnTurnFtOff("FT turned off (--force)", t).ok());
  EXPECT_FALSE(a.gate_open);
  EXPECT_EQ(primary.state(), FtState::kArbitrating);
  Deliver(a, primary);
  EXPECT_TRUE(a.halted);
  EXPECT_FALSE(a.gate_open);
  backup.OnCaughtUp(t);
  EXPECT_TRUE(b.went_live);
  ExpectAtMostOneLive();
}

TEST_F(Pair, TurningFtOffAfterThePeerStoppedItsCopyWinsAtOnce) {
  Connect();
  ASSERT_TRUE(primary.OnTurnFtOff("FT turned off", t).ok());
  primary.OnPeerLost("closed", t);  // the backup's removal closes the channel
  ASSERT_EQ(a.claims.size(), 1u);
  Deliver(a, primary);
  EXPECT_TRUE(a.gate_open);
  EXPECT_TRUE(primary.ft_off());
  EXPECT_EQ(primary.epoch(), 2u);
}

TEST_F(Pair, APrimaryWhoseBackupIsLostWhileFtdStopsReleasesNothing) {
  Connect();
  primary.OnStop(t);
  primary.OnPeerLost("no frame for 1000 ms", t);
  EXPECT_FALSE(a.gate_open);
  EXPECT_TRUE(a.claims.empty()) << "a stopping copy does not contest the epoch";
  EXPECT_EQ(primary.state(), FtState::kHalted);
  EXPECT_TRUE(a.halted) << "held output is dropped";
  EXPECT_FALSE(primary.OnTurnFtOff("late disable", t).ok());
}

TEST_F(Pair, WithoutAClaimStoreThePrimaryRunsAloneAndTheBackupNeverGoesLive) {
  VmArbiter p{{"web1", "hostA", false, 200ms}, Role::kPrimary, 1, a};
  VmArbiter q{{"web1", "hostB", false, 200ms}, Role::kBackup, 1, b};
  p.Start(t);
  q.Start(t);
  EXPECT_EQ(a.started, 1u) << "no store to read";
  EXPECT_EQ(a.reads, 0);
  p.OnPeerConnected(t);
  q.OnPeerConnected(t);
  p.OnPeerLost("closed", t);
  q.OnPeerLost("closed", t);
  q.OnCaughtUp(t);
  EXPECT_TRUE(a.gate_open);
  EXPECT_FALSE(b.went_live);
  EXPECT_TRUE(a.claims.empty() && b.claims.empty());
}

TEST_F(Pair, AStaleNodeComingBackWithAnOldEpochLoses) {
  Connect();  // both think they are in epoch 1
  storage.Put({1, "web1", 3, "hostA", "earlier failover", 0});
  backup.OnPeerLost("closed", t);
  Deliver(b, backup);  // claims epoch 2, but epoch 3 exists
  EXPECT_TRUE(b.halted);
  EXPECT_NE(b.halt_why.find("lost epoch 3"), std::string::npos) << b.halt_why;
}

TEST_F(Pair, LateAnswersAndRepeatedLossesChangeNothing) {
  Connect();
  primary.OnPeerLost("closed", t);
  primary.OnPeerLost("closed again", t);  // already arbitrating: no second claim
  EXPECT_EQ(a.claims.size(), 1u);
  Deliver(a, primary);
  primary.OnClaimResult(Unavailable("late duplicate"), t);
  EXPECT_EQ(primary.state(), FtState::kUnprotected);
  primary.OnPeerConnected(t);  // a reconnect after the split does not re-protect silently
  EXPECT_EQ(primary.state(), FtState::kUnprotected);
}

}  // namespace
}  // namespace ft::arbiter
