// A backup following its primary, without QEMU, sockets or timers: where it stands (waiting,
// replaying, primary lost, going live, ...), what it received, a planned failover it
// accepted, and what a closed channel means. BackupVm (backup_vm.cc) feeds it what happens
// and drives the replayer and the timers; the unit tests drive it with fakes.
//
// Invariant it keeps (docs/design.md, "Never two live copies"): a primary that is lost --
// its channel closed before the end of its log, for whatever reason, planned or not -- is
// told to the authority, which alone decides whether this copy goes live (it claims the
// next epoch once the replay caught up, which this class tells it) or halts. A backup never
// goes live on its own.
#pragma once

#include <cstdint>
#include <string>

#include "ft/daemon/vm_status_enums.h"
#include "ports.h"
#include "vm_log.h"

namespace ft::daemon {

enum class BackupState {
  kWaitingForPrimary,
  kReplaying,
  kPrimaryLost,
  kGoingLive,
  kLive,
  kHalted,
  kFinished,
  kFailed
};
VmFtState ReportedState(BackupState s);
const char* BackupStateName(BackupState s);

class BackupFollow {
 public:
  BackupFollow(std::string vm, Authority& authority, const ReplayProgress& replay,
               const VmLog& vlog)
      : vm_(std::move(vm)), authority_(authority), replay_(replay), vlog_(vlog) {}

  BackupState state() const { return state_; }
  const std::string& note() const { return note_; }
  const std::string& peer_node() const { return peer_node_; }
  uint64_t received() const { return received_; }

  // A primary's channel was adopted: its log is replayed from the start.
  void OnPrimaryConnected(const std::string& peer_node);
  // Log bytes [offset, offset + size) arrived.
  void OnLog(uint64_t offset, uint64_t size);
  // Planned failover: the primary stopped with `log_end` bytes of log, all received here;
  // its channel closes next and this copy takes over without a heartbeat timeout.
  // `connected`: the primary's channel is still open.
  Status AcceptHandover(uint64_t log_end, bool connected);

  // The primary's channel closed. After the end of its log: finished. Otherwise the primary
  // is lost and the authority hears it; the result says what the role does next.
  enum class AfterClose {
    kNothing,   // not replaying (halted, failed, ...): nothing changes
    kFinished,  // the primary shut down after its log's end
    kHold,      // lost, failover off: the replica holds where it is
    kCatchUp,   // lost, failover on: replay to the end of what arrived (CheckCaughtUp)
  };
  AfterClose OnChannelClosed(const Status& why);
  // While the primary is lost: true once there is nothing more to wait for (the authority
  // heard CaughtUp, or this copy is no longer waiting); false: ask again shortly.
  bool CheckCaughtUp();

  // What the role did with the authority's decisions and its replayer.
  void GoingLive(uint64_t epoch);
  void Live(const std::string& note);
  void Halted(const std::string& why);
  // The replica cannot be trusted (corrupt log, replayer failed): it never goes live. False
  // if it had already failed.
  bool Fail(const std::string& why);
  // The replaying QEMU exited by itself: normal once the log's END was fed. True if the
  // copy failed by it (as Fail).
  bool ReplayerEnded(const std::string& why);

 private:
  std::string vm_;
  Authority& authority_;
  const ReplayProgress& replay_;
  const VmLog& vlog_;
  BackupState state_ = BackupState::kWaitingForPrimary;
  std::string note_, peer_node_;
  uint64_t received_ = 0;
  std::string handover_from_;  // set: a planned failover, not a lost primary
  uint64_t handover_log_end_ = 0;
};

}  // namespace ft::daemon
