// Every ordering of the failures that matter, with two arbiters (a primary and a backup)
// sharing one fake claim store and a fake clock: the primary dies, the backup dies, the
// channel partitions, storage is unreachable, both race. Never two live copies.
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
  bool gate_open = false, halted = false;
  std::optional<uint64_t> went_live;
  std::string halt_why;
  void Claim(const ClaimRequest& r) override { claims.push_back(r); }
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
  VmArbiter primary{{"web1", "hostA", 200ms}, Role::kPrimary, 1, a};
  VmArbiter backup{{"web1", "hostB", 200ms}, Role::kBackup, 1, b};

  void Connect() {
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

TEST_F(Pair, APrimaryThatNeverHadABackupRunsAloneWithoutAClaim) {
  primary.OnGiveUpWaiting("the backup did not connect before 64 MiB of log", t);
  EXPECT_TRUE(a.gate_open);
  EXPECT_TRUE(a.claims.empty());
  EXPECT_EQ(primary.epoch(), 1u);
  // A backup that was never protected does not arbitrate when its channel drops.
  backup.OnPeerLost("closed", t);
  EXPECT_TRUE(b.claims.empty());
  EXPECT_EQ(backup.state(), FtState::kWaitingForPeer);
}

TEST_F(Pair, AStaleNodeComingBackWithAnOldEpochLoses) {
  storage.Put({1, "web1", 3, "hostA", "earlier failover", 0});
  Connect();  // both think they are in epoch 1
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
