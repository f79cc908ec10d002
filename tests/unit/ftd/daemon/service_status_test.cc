// The STATUS= line `systemctl status ftd` shows: VMs, how many run, how many per FT state.
#include "service_notifier.h"

#include <gtest/gtest.h>

namespace ft::daemon {
namespace {

VmReport Vm(VmState state, VmFtState ft_state) {
  VmReport r;
  r.state = state;
  r.ft_state = ft_state;
  return r;
}

TEST(ServiceStatusLineTest, NoVms) { EXPECT_EQ(ServiceStatusLine({}), "no VMs"); }

TEST(ServiceStatusLineTest, CountsEachFtStateProtectedFirst) {
  EXPECT_EQ(ServiceStatusLine({Vm(VmState::kRunning, VmFtState::kUnprotected),
                               Vm(VmState::kRunning, VmFtState::kReplaying),
                               Vm(VmState::kRunning, VmFtState::kProtected)}),
            "3 VMs, 3 running: 1 protected, 1 unprotected, 1 replaying");
}

TEST(ServiceStatusLineTest, OneVmIsSingular) {
  EXPECT_EQ(ServiceStatusLine({Vm(VmState::kRunning, VmFtState::kWaitingForBackup)}),
            "1 VM, 1 running: 1 waiting-for-backup");
}

TEST(ServiceStatusLineTest, VmsThatDoNotRunAreCountedButNotAsRunning) {
  // A backup waits for its primary before its replayer exists; a plain VM's QEMU failed.
  EXPECT_EQ(ServiceStatusLine({Vm(VmState::kWaiting, VmFtState::kWaitingForPrimary),
                               Vm(VmState::kFailed, VmFtState::kOff),
                               Vm(VmState::kRunning, VmFtState::kOff)}),
            "3 VMs, 1 running: 1 waiting-for-primary, 2 without FT");
}

TEST(ServiceStatusLineTest, BackupStatesInOrder) {
  EXPECT_EQ(ServiceStatusLine({Vm(VmState::kStopped, VmFtState::kFailed),
                               Vm(VmState::kStopped, VmFtState::kFinished),
                               Vm(VmState::kRunning, VmFtState::kPrimaryLost)}),
            "3 VMs, 1 running: 1 primary-lost, 1 finished, 1 failed");
}

TEST(ServiceStatusLineTest, AStateOutsideTheListIsCountedAfterIt) {
  EXPECT_EQ(ServiceStatusLine({Vm(VmState::kRunning, VmFtState::kGoingLive),
                               Vm(VmState::kRunning, VmFtState::kProtected)}),
            "2 VMs, 2 running: 1 protected, 1 going-live");
}

}  // namespace
}  // namespace ft::daemon
