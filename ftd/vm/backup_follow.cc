#include "backup_follow.h"

#include <fmt/format.h>

namespace ft::daemon {

VmFtState ReportedState(BackupState s) {
  switch (s) {
    case BackupState::kWaitingForPrimary:
      return VmFtState::kWaitingForPrimary;
    case BackupState::kReplaying:
      return VmFtState::kReplaying;
    case BackupState::kPrimaryLost:
      return VmFtState::kPrimaryLost;
    case BackupState::kGoingLive:
      return VmFtState::kGoingLive;
    case BackupState::kLive:
      return VmFtState::kLive;
    case BackupState::kHalted:
      return VmFtState::kHalted;
    case BackupState::kFinished:
      return VmFtState::kFinished;
    case BackupState::kFailed:
      return VmFtState::kFailed;
  }
  return VmFtState::kFailed;
}

const char* BackupStateName(BackupState s) { return VmFtStateName(ReportedState(s)); }

void BackupFollow::OnPrimaryConnected(const std::string& peer_node) {
  peer_node_ = peer_node;
  state_ = BackupState::kReplaying;
  authority_.PeerConnected();
}

void BackupFollow::OnLog(uint64_t offset, uint64_t size) {
  if (!handover_from_.empty() && offset + size > handover_log_end_) {
    // The primary resumed (its handover was abandoned): a later loss is a real one.
    handover_from_.clear();
  }
  received_ = offset + size;
}

Status BackupFollow::AcceptHandover(uint64_t log_end, bool connected) {
  if (state_ != BackupState::kReplaying || !connected) {
    return FailedPrecondition(
        fmt::format("vm '{}' is {} on this node, not replaying: it cannot "
                    "take over{}",
                    vm_, BackupStateName(state_), note_.empty() ? "" : " (" + note_ + ")"));
  }
  if (!authority_.on()) {
    return FailedPrecondition(fmt::format(
        "vm '{}': failover is off on this node (no shared_storage): it cannot go live", vm_));
  }
  if (received_ != log_end) {
    return FailedPrecondition(
        fmt::format("vm '{}': {} log bytes received here, but the primary's log is {} bytes", vm_,
                    received_, log_end));
  }
  handover_from_ = peer_node_;
  handover_log_end_ = log_end;
  vlog_.warn("planned failover: '{}' stopped at {} log bytes; taking over when its channel closes",
             peer_node_, log_end);
  return Status::Ok();
}

BackupFollow::AfterClose BackupFollow::OnChannelClosed(const Status& closed) {
  if (state_ != BackupState::kReplaying) return AfterClose::kNothing;
  Status why = closed;
  if (!handover_from_.empty()) {
    why = Aborted(fmt::format("planned failover from '{}'", handover_from_));
  }
  if (replay_.ended()) {
    state_ = BackupState::kFinished;
    note_ = "the primary shut down; replay runs to the end of its log";
    vlog_.info("primary '{}' closed the channel after the end of the log", peer_node_);
    return AfterClose::kFinished;
  }
  state_ = BackupState::kPrimaryLost;
  note_ = fmt::format("primary '{}' lost: {}", peer_node_, why.ToString());
  authority_.PeerLost(why.ToString());
  if (!authority_.on()) {
    vlog_.error(
        "{}; the replica holds at icount {} (failover is off: no shared_storage on this node)",
        note_, replay_.break_icount());
    return AfterClose::kHold;
  }
  vlog_.error("{}; replaying what was received ({} bytes, icount {}) and claiming the next epoch",
              note_, received_, replay_.received_icount());
  return AfterClose::kCatchUp;
}

bool BackupFollow::CheckCaughtUp() {
  if (state_ != BackupState::kPrimaryLost) return true;
  // A replayer that never started has nothing to go live from; going live says so.
  if (replay_.started() && !replay_.caught_up()) return false;
  vlog_.info("replay caught up with the received log (icount {})", replay_.replayed_icount());
  authority_.CaughtUp();
  return true;
}

void BackupFollow::GoingLive(uint64_t epoch) {
  state_ = BackupState::kGoingLive;
  note_ = fmt::format("won epoch {}; going live", epoch);
}

void BackupFollow::Live(const std::string& note) {
  state_ = BackupState::kLive;
  note_ = note;
}

void BackupFollow::Halted(const std::string& why) {
  state_ = BackupState::kHalted;
  note_ = why;
}

bool BackupFollow::Fail(const std::string& why) {
  if (state_ == BackupState::kFailed) return false;
  state_ = BackupState::kFailed;
  note_ = why;
  authority_.CopyEnded("backup failed: " + why);  // a failed replica never goes live
  vlog_.error("backup failed: {}", why);
  return true;
}

bool BackupFollow::ReplayerEnded(const std::string& why) {
  if (replay_.ended()) {
    state_ = BackupState::kFinished;
    vlog_.info("replay reached the end of the primary's log");
    return false;
  }
  return Fail("replaying QEMU ended: " + why);
}

}  // namespace ft::daemon
