// The backup's behaviour with fakes: a lost primary is handed to the authority (and only a
// lost one: a primary that shut down after its log's end is not), the authority hears when
// the replay caught up, a planned failover is accepted only with the whole log, and going
// live runs its steps in order, each only after the one before succeeded.
#include <gtest/gtest.h>

#include "backup_follow.h"
#include "fakes.h"
#include "go_live.h"

namespace ft::daemon {
namespace {

using testing::FakeAuthority;
using testing::FakeGoLiveSteps;
using testing::FakeReplay;

class BackupFollowTest : public ::testing::Test {
 protected:
  BackupFollowTest() : vlog(testing::QuietLog()), follow("web1", authority, replay, vlog) {}
  void Follow() {
    follow.OnPrimaryConnected("hostA");
    follow.OnLog(0, 4096);
    replay.received_ = 1'000'000;
    replay.replayed_ = 600'000;
  }
  FakeAuthority authority;
  FakeReplay replay;
  VmLog vlog;
  BackupFollow follow;
};

TEST_F(BackupFollowTest, ALostPrimaryIsHandedToTheAuthorityWhichHearsWhenTheReplayCaughtUp) {
  Follow();
  EXPECT_EQ(follow.state(), BackupState::kReplaying);
  EXPECT_EQ(follow.OnChannelClosed(Unavailable("heartbeat timeout")),
            BackupFollow::AfterClose::kCatchUp);
  EXPECT_EQ(follow.state(), BackupState::kPrimaryLost);
  EXPECT_EQ(authority.calls, (std::vector<std::string>{
                                 "PeerConnected", "PeerLost: unavailable: heartbeat timeout"}));
  EXPECT_FALSE(follow.CheckCaughtUp()) << "the replay is 400,000 instructions behind";
  replay.replayed_ = 1'000'000;
  EXPECT_TRUE(follow.CheckCaughtUp());
  EXPECT_EQ(authority.calls.back(), "CaughtUp");
  EXPECT_EQ(follow.note(), "primary 'hostA' lost: unavailable: heartbeat timeout");
}

TEST_F(BackupFollowTest, APrimaryThatShutDownAfterItsLogsEndIsNotLost) {
  Follow();
  replay.ended_ = true;
  EXPECT_EQ(follow.OnChannelClosed(Aborted("closed")), BackupFollow::AfterClose::kFinished);
  EXPECT_EQ(follow.state(), BackupState::kFinished);
  EXPECT_EQ(authority.calls, (std::vector<std::string>{"PeerConnected"}));
}

TEST_F(BackupFollowTest, WithFailoverOffTheReplicaHoldsWhereItIs) {
  authority.failover_on = false;
  Follow();
  EXPECT_EQ(follow.OnChannelClosed(Unavailable("gone")), BackupFollow::AfterClose::kHold);
  EXPECT_EQ(authority.calls.back(), "PeerLost: unavailable: gone");
}

TEST_F(BackupFollowTest, AReplayerThatNeverStartedIsCaughtUpAtOnceAndGoingLiveSaysWhy) {
  follow.OnPrimaryConnected("hostA");
  replay.started_ = false;
  replay.received_ = 10;
  follow.OnChannelClosed(Unavailable("gone"));
  EXPECT_TRUE(follow.CheckCaughtUp());
  EXPECT_EQ(authority.calls.back(), "CaughtUp");
}

TEST_F(BackupFollowTest, APlannedFailoverNeedsTheWholeLogAndIsNamedWhenTheChannelCloses) {
  Follow();
  Status short_log = follow.AcceptHandover(8192, /*connected=*/true);
  EXPECT_EQ(short_log.message(),
            "vm 'web1': 4096 log bytes received here, but the primary's log is 8192 bytes");
  EXPECT_FALSE(follow.AcceptHandover(4096, /*connected=*/false).ok());
  ASSERT_TRUE(follow.AcceptHandover(4096, /*connected=*/true).ok());
  follow.OnChannelClosed(Unavailable("closed"));
  EXPECT_EQ(authority.calls.back(), "PeerLost: aborted: planned failover from 'hostA'");
}

TEST_F(BackupFollowTest, AHandoverThePrimaryAbandonedMakesALaterLossARealOne) {
  Follow();
  ASSERT_TRUE(follow.AcceptHandover(4096, true).ok());
  follow.OnLog(4096, 100);  // the primary resumed
  follow.OnChannelClosed(Unavailable("heartbeat timeout"));
  EXPECT_EQ(authority.calls.back(), "PeerLost: unavailable: heartbeat timeout");
}

TEST_F(BackupFollowTest, AFailedReplicaTellsTheAuthorityOnceAndIgnoresALaterClose) {
  Follow();
  EXPECT_TRUE(follow.Fail("corrupt log from the primary: bad frame"));
  EXPECT_FALSE(follow.Fail("again"));
  EXPECT_EQ(authority.calls.back(),
            "CopyEnded: backup failed: corrupt log from the primary: bad frame");
  EXPECT_EQ(follow.OnChannelClosed(Unavailable("closed")), BackupFollow::AfterClose::kNothing);
  EXPECT_EQ(authority.calls.size(), 2u);
}

class GoLiveTest : public ::testing::Test {
 protected:
  GoLiveTest() : vlog(testing::QuietLog()), go_live(steps, authority, vlog) {
    go_live.OnLive([this] { ++live_calls; });
  }
  FakeAuthority authority;
  FakeGoLiveSteps steps;
  VmLog vlog;
  GoLive go_live;
  int live_calls = 0;
};

TEST_F(GoLiveTest, TheStepsRunInOrderEachAfterTheOneBeforeSucceeded) {
  go_live.Run(3, Status::Ok());
  EXPECT_EQ(steps.steps, (std::vector<std::string>{"went-live record, epoch 3", "replay to end"}));
  steps.replayed(uint64_t{123456});
  EXPECT_EQ(steps.steps.back(), "savevm");
  EXPECT_EQ(authority.calls, (std::vector<std::string>{"MarkReplayEnded"}));
  steps.saved(Status::Ok());
  EXPECT_EQ(steps.steps.back(), "stop replayer");
  steps.stopped();
  EXPECT_EQ(steps.steps.back(), "start live copy");
  EXPECT_TRUE(go_live.running());
  EXPECT_EQ(live_calls, 0);
  steps.started(Status::Ok());
  EXPECT_EQ(steps.steps, (std::vector<std::string>{"went-live record, epoch 3", "replay to end",
                                                   "savevm", "stop replayer", "start live copy"}));
  EXPECT_EQ(authority.calls,
            (std::vector<std::string>{"MarkReplayEnded", "MarkSnapshotSaved", "GoLiveDone: ok"}));
  EXPECT_TRUE(go_live.live());
  EXPECT_EQ(live_calls, 1);
}

TEST_F(GoLiveTest, AFailedStepEndsItAndTheAuthorityHearsWhy) {
  go_live.Run(3, Status::Ok());
  steps.replayed(uint64_t{1});
  steps.saved(Unavailable("savevm: No space left on device"));
  EXPECT_EQ(steps.steps.back(), "savevm") << "the replayer is not stopped";
  EXPECT_EQ(authority.calls.back(), "GoLiveDone: unavailable: savevm: No space left on device");
  EXPECT_FALSE(go_live.live());
  EXPECT_FALSE(go_live.running());
}

TEST_F(GoLiveTest, ALiveCopyThatFailsToStartIsReportedOnce) {
  go_live.Run(3, Status::Ok());
  steps.replayed(uint64_t{1});
  steps.saved(Status::Ok());
  steps.stopped();
  auto started = steps.started;
  started(Unavailable("QEMU did not start"));
  started(Unavailable("QEMU did not start"));
  EXPECT_EQ(authority.calls, (std::vector<std::string>{"MarkReplayEnded", "MarkSnapshotSaved",
                                                       "GoLiveDone: unavailable: QEMU did not "
                                                       "start"}));
  EXPECT_EQ(live_calls, 0);
}

TEST_F(GoLiveTest, NothingToGoLiveFromIsReportedWithoutTouchingAnything) {
  go_live.Run(3, FailedPrecondition("the replayer is not running"));
  EXPECT_TRUE(steps.steps.empty());
  EXPECT_EQ(authority.calls,
            (std::vector<std::string>{"GoLiveDone: failed-precondition: the replayer is not "
                                      "running"}));
}

TEST_F(GoLiveTest, AStopLetsTheStepUnderWayFinishButNoLaterOneStart) {
  go_live.Run(3, Status::Ok());
  steps.replayed(uint64_t{1});
  go_live.Cancel();
  steps.saved(Status::Ok());
  EXPECT_EQ(steps.steps.back(), "savevm");
  EXPECT_TRUE(authority.calls == std::vector<std::string>{"MarkReplayEnded"});
}

TEST_F(GoLiveTest, AWentLiveRecordThatCannotBeWrittenDoesNotStopIt) {
  steps.record_status = Unavailable("disk full");
  go_live.Run(4, Status::Ok());
  EXPECT_EQ(steps.steps.back(), "replay to end");
}

}  // namespace
}  // namespace ft::daemon
