// The states a VM reports: their text on the wire and in logs comes from control.proto, and
// the authority's states map onto them as each role says them.
#include "ft/daemon/vm_status_enums.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "ft/arbiter/vm_arbiter.h"
#include "ft/proto/control.pb.h"

namespace ft::daemon {
namespace {

TEST(VmStatusEnumsTest, TextIsTheProtoNameInLowerCaseWithHyphens) {
  EXPECT_STREQ(VmFtStateName(VmFtState::kWaitingForBackup), "waiting-for-backup");
  EXPECT_STREQ(VmFtStateName(VmFtState::kPrimaryLost), "primary-lost");
  EXPECT_STREQ(VmFtStateName(VmFtState::kOff), "off");
  EXPECT_STREQ(FtRoleName(FtRole::kPrimary), "primary");
  EXPECT_STREQ(FtRoleName(FtRole::kBackup), "backup");
  EXPECT_STREQ(VmStateName(VmState::kRunning), "running");
  EXPECT_STREQ(VmStateName(VmState::kWaiting), "waiting");
  EXPECT_STREQ(SwitchoverKindName(SwitchoverKind::kDrill), "drill");
  EXPECT_STREQ(SwitchoverKindName(SwitchoverKind::kFailover), "failover");
}

TEST(VmStatusEnumsTest, EveryWireValueHasItsOwnText) {
  std::set<std::string> seen;
  for (int v = proto::VmFtState_MIN; v <= proto::VmFtState_MAX; ++v) {
    std::string text = VmFtStateName(static_cast<VmFtState>(v));
    EXPECT_NE(text, "?") << v;
    EXPECT_EQ(text.find('_'), std::string::npos) << text;
    EXPECT_TRUE(seen.insert(text).second) << text;
  }
  // A value a newer peer might send is shown as unknown, not as another state.
  EXPECT_STREQ(VmFtStateName(static_cast<VmFtState>(proto::VmFtState_MAX + 1)), "?");
}

TEST(VmStatusEnumsTest, EachRoleSaysWaitingForTheOtherInItsOwnWords) {
  using arbiter::FtState;
  EXPECT_EQ(ReportedFtState(FtState::kWaitingForPeer, FtRole::kPrimary),
            VmFtState::kWaitingForBackup);
  EXPECT_EQ(ReportedFtState(FtState::kWaitingForPeer, FtRole::kBackup),
            VmFtState::kWaitingForPrimary);
  EXPECT_EQ(ReportedFtState(FtState::kWaitingForPeer), VmFtState::kWaitingForPeer);
  // Every other state reads the same for both roles, and as the authority names it.
  for (FtState s :
       {FtState::kCheckingStore, FtState::kStale, FtState::kProtected, FtState::kArbitrating,
        FtState::kGoingLive, FtState::kUnprotected, FtState::kHalted}) {
    EXPECT_EQ(ReportedFtState(s, FtRole::kPrimary), ReportedFtState(s, FtRole::kBackup));
    EXPECT_STREQ(VmFtStateName(ReportedFtState(s)), arbiter::FtStateName(s));
  }
}

}  // namespace
}  // namespace ft::daemon
