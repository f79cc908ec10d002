#include "ft/arbiter/vm_arbiter.h"

#include <utility>

#include <fmt/format.h>

#include "ft/utc_time.h"

namespace ft::arbiter {

const char* FtStateName(FtState state) {
  switch (state) {
    case FtState::kCheckingStore:
      return "checking-store";
    case FtState::kStale:
      return "stale";
    case FtState::kWaitingForPeer:
      return "waiting-for-peer";
    case FtState::kProtected:
      return "protected";
    case FtState::kArbitrating:
      return "arbitrating";
    case FtState::kGoingLive:
      return "going-live";
    case FtState::kUnprotected:
      return "unprotected";
    case FtState::kHalted:
      return "halted";
  }
  return "?";
}

namespace {

const char* PeerName(Role role) { return role == Role::kPrimary ? "backup" : "primary"; }

}  // namespace

Result<StoreView> ReadStoreView(shared_disk::TestAndSet& store, const std::string& vm) {
  StoreView view;
  FT_ASSIGN_OR_RETURN(view.store_id, store.StoreId());
  FT_ASSIGN_OR_RETURN(uint64_t latest, store.LatestEpoch(vm));
  if (latest > 0) {
    FT_ASSIGN_OR_RETURN(shared_disk::ClaimRecord newest, store.Read(vm, latest));
    view.newest = std::move(newest);
  }
  return view;
}

VmArbiter::VmArbiter(ArbiterConfig config, Role role, uint64_t epoch, Actions& actions)
    : config_(std::move(config)), role_(role), epoch_(epoch), actions_(actions) {}

void VmArbiter::Enter(FtState state, std::string note) {
  state_ = state;
  note_ = std::move(note);
}

bool VmArbiter::Running() const {
  return started_ && state_ != FtState::kCheckingStore && state_ != FtState::kStale;
}

void VmArbiter::HaltNow(FtState state, std::string why) {
  bool was_running = Running() && state_ != FtState::kHalted;
  gate_open_ = false;
  Enter(state, std::move(why));
  if (was_running) actions_.Halt(note_);
}

void VmArbiter::OpenGateNow(std::string note, TimePoint now) {
  if (stopping_) {
    Enter(FtState::kHalted, note +
                                "; ftd is stopping, so this copy stops without releasing "
                                "its held output");
    return;
  }
  live_at = now;
  gate_open_ = true;
  Enter(FtState::kUnprotected, std::move(note));
  actions_.OpenGate();
}

std::string VmArbiter::StaleNote(const shared_disk::ClaimRecord& newest) const {
  if (newest.winner == config_.node) {
    return fmt::format(
        "stale: this host won epoch {} of '{}' at {} but this copy is a {} in epoch {}; its "
        "live copy is gone, and this one cannot take over from a replica that is behind",
        newest.epoch, config_.vm, FormatUtcMs(newest.unix_time_ms),
        role_ == Role::kPrimary ? "primary" : "backup", epoch_);
  }
  return fmt::format(
      "stale: '{}' went live on '{}' in epoch {} at {} ({}); this copy is in epoch {} and does "
      "not run. Turn FT off here ('ftctl disable {}') to remove it; do not restart '{}'",
      config_.vm, newest.winner, newest.epoch, FormatUtcMs(newest.unix_time_ms), newest.reason,
      epoch_, config_.vm, newest.winner);
}

// ---- before the copy runs

void VmArbiter::Start(TimePoint) {
  if (started_) return;
  started_ = true;
  if (!config_.failover) {
    Enter(FtState::kWaitingForPeer, "");
    actions_.StartCopy(epoch_);
    return;
  }
  Enter(FtState::kCheckingStore,
        "reading the claim store's newest epoch for this VM before it runs");
  read_in_flight_ = true;
  retry_at_.reset();
  actions_.ReadStore();
}

void VmArbiter::CheckStoreAgain(TimePoint) {
  if (!config_.failover || role_ != Role::kPrimary || state_ != FtState::kWaitingForPeer ||
      read_in_flight_ || stopping_) {
    return;
  }
  read_in_flight_ = true;
  actions_.ReadStore();
}

void VmArbiter::OnStoreRead(const Result<StoreView>& view, TimePoint now) {
  read_in_flight_ = false;
  if (stopping_) return;
  if (state_ != FtState::kCheckingStore && state_ != FtState::kWaitingForPeer) return;
  if (!view.ok()) {
    // Not known: a copy that has not started stays stopped; a waiting one stays gated.
    if (state_ == FtState::kCheckingStore) {
      note_ = fmt::format(
          "the claim store is not readable, so this copy does not run yet: {}; "
          "retrying",
          view.status().ToString());
      retry_at_ = now + config_.retry;
    }
    return;
  }
  store_id_ = view->store_id;
  if (view->newest) newest_ = view->newest;
  const auto& newest = view->newest;
  bool stale = false;
  if (newest) {
    bool mine = newest->winner == config_.node;
    if (newest->epoch > epoch_) {
      stale = role_ == Role::kBackup || !mine;
    } else if (newest->epoch == epoch_) {
      stale = role_ == Role::kPrimary && !mine;
    }
    if (!stale && mine && newest->epoch > epoch_) {
      // This host won a later epoch and crashed before recording it: the store is the record.
      if (Status s = actions_.RecordEpoch(newest->epoch); !s.ok()) {
        note_ = fmt::format("this host won epoch {} but cannot record it: {}; retrying",
                            newest->epoch, s.ToString());
        retry_at_ = now + config_.retry;
        return;
      }
      epoch_ = newest->epoch;
    }
  }
  if (stale) {
    HaltNow(FtState::kStale, StaleNote(*newest));
    return;
  }
  if (state_ == FtState::kCheckingStore) {
    Enter(FtState::kWaitingForPeer, "");
    actions_.StartCopy(epoch_);
  }
}

// ---- the peer

void VmArbiter::OnPeerConnected(TimePoint) {
  // Only a pair that has never split can (re)join: after a loss the epoch moves on, and
  // the channel's handshake refuses a peer of another epoch.
  if (state_ == FtState::kWaitingForPeer && !stopping_) Enter(FtState::kProtected, "");
}

void VmArbiter::OnPeerLost(const std::string& why, TimePoint now) {
  if (state_ != FtState::kProtected) return;  // nothing to arbitrate (yet, or any more)
  peer_lost_at = now;
  if (stopping_) {
    // The backup may go live now; whatever this copy holds was never acked: drop it.
    HaltNow(FtState::kHalted,
            fmt::format("{} lost ({}) while ftd stops: held output is dropped, this copy stops",
                        PeerName(role_), why));
    return;
  }
  if (!config_.failover) {
    if (role_ == Role::kPrimary) {
      OpenGateNow(fmt::format("backup lost ({}); failover is off (no claim store on either "
                              "host), so no other copy can go live: running alone",
                              why),
                  now);
    } else {
      Enter(FtState::kHalted,
            fmt::format("primary lost ({}); failover is off on this node: this copy never "
                        "goes live",
                        why));
    }
    return;
  }
  claim_reason_ = fmt::format("{} lost: {}", PeerName(role_), why);
  Enter(FtState::kArbitrating,
        fmt::format("{} lost ({}); claiming epoch {}{}", PeerName(role_), why, epoch_ + 1,
                    role_ == Role::kPrimary ? ", output held until it is won" : ""));
  SendClaim(now);
}

void VmArbiter::OnCaughtUp(TimePoint) {
  caught_up_ = true;
  MaybeGoLive();
}

void VmArbiter::OnGiveUpWaiting(const std::string& why, TimePoint now) {
  if (role_ != Role::kPrimary || state_ != FtState::kWaitingForPeer || stopping_) return;
  if (!config_.failover) {
    OpenGateNow(why + "; failover is off, so no other copy can go live: running alone", now);
    return;
  }
  claim_reason_ = why;
  Enter(FtState::kArbitrating,
        fmt::format("{}; claiming epoch {} before running alone (output held until it is won)", why,
                    epoch_ + 1));
  SendClaim(now);
}

// ---- operator and daemon

Status VmArbiter::OnTurnFtOff(const std::string& why, TimePoint now) {
  if (role_ != Role::kPrimary) {
    return FailedPrecondition(fmt::format(
        "vm '{}' is the backup here: FT is turned off on the primary's host", config_.vm));
  }
  if (stopping_) return FailedPrecondition(fmt::format("vm '{}': ftd is stopping", config_.vm));
  switch (state_) {
    case FtState::kUnprotected:
      ft_off_ = true;  // already alone in the newest epoch, won by itself
      return Status::Ok();
    case FtState::kArbitrating:
      ft_off_ = true;  // the claim under way decides
      return Status::Ok();
    case FtState::kWaitingForPeer:
    case FtState::kProtected:
      ft_off_ = true;
      if (!config_.failover) {
        OpenGateNow(why + "; failover is off, so no other copy can go live", now);
        return Status::Ok();
      }
      claim_reason_ = why;
      Enter(FtState::kArbitrating,
            fmt::format("{}; claiming epoch {} before running alone (output held until it is "
                        "won)",
                        why, epoch_ + 1));
      SendClaim(now);
      return Status::Ok();
    case FtState::kCheckingStore:
    case FtState::kStale:
    case FtState::kGoingLive:
    case FtState::kHalted:
      break;
  }
  return FailedPrecondition(
      fmt::format("vm '{}' is {} here: {}", config_.vm, FtStateName(state_), note_));
}

void VmArbiter::OnStop(TimePoint) { stopping_ = true; }

void VmArbiter::OnCopyEnded(const std::string& why, TimePoint) {
  gate_open_ = false;
  Enter(FtState::kHalted, why);
}

// ---- claims

void VmArbiter::SendClaim(TimePoint) {
  claim_in_flight_ = true;
  retry_at_.reset();
  ++claims_sent_;
  shared_disk::ClaimRequest request;
  request.vm = config_.vm;
  request.epoch = epoch_ + 1;  // never newest+1: a stale copy must lose, not leapfrog
  request.node = config_.node;
  request.reason = claim_reason_;
  actions_.Claim(request);
}

void VmArbiter::OnClaimResult(const Result<shared_disk::ClaimOutcome>& result, TimePoint now) {
  if (state_ != FtState::kArbitrating || !claim_in_flight_) return;
  claim_in_flight_ = false;
  if (!result.ok()) {
    // Not won yet: say why, try again, never go live or open the gate on it.
    note_ = fmt::format("claim of epoch {} not decided: {}; retrying", epoch_ + 1,
                        result.status().ToString());
    retry_at_ = now + config_.retry;
    return;
  }
  const auto& outcome = *result;
  newest_ = outcome.record;
  if (!outcome.won()) {
    HaltNow(FtState::kHalted,
            fmt::format("lost epoch {} to '{}' ({}): halting this copy", outcome.record.epoch,
                        outcome.record.winner, outcome.record.reason));
    return;
  }
  claim_won_ = true;
  claim_won_at = now;
  // The store is the durable record of the win; the local copy only saves a read at start.
  Status recorded = actions_.RecordEpoch(epoch_ + 1);
  std::string unrecorded =
      recorded.ok() ? "" : fmt::format(" (not recorded here: {})", recorded.ToString());
  if (role_ == Role::kPrimary) {
    ++epoch_;
    OpenGateNow(fmt::format("won epoch {}{}; running alone: {}", epoch_, unrecorded, claim_reason_),
                now);
    return;
  }
  note_ = fmt::format("won epoch {}{}; replaying what was received before going live", epoch_ + 1,
                      unrecorded);
  MaybeGoLive();
}

void VmArbiter::MaybeGoLive() {
  if (role_ != Role::kBackup || state_ != FtState::kArbitrating || !claim_won_ || !caught_up_) {
    return;
  }
  if (stopping_) {
    Enter(FtState::kHalted, fmt::format("won epoch {} while ftd stops: this copy does not go "
                                        "live",
                                        epoch_ + 1));
    return;
  }
  gate_open_ = true;  // the won epoch is the newest: the copy going live may send
  Enter(FtState::kGoingLive, fmt::format("won epoch {}; going live", epoch_ + 1));
  actions_.GoLive(epoch_ + 1);
}

void VmArbiter::OnGoLiveDone(const Status& status, TimePoint now) {
  if (state_ != FtState::kGoingLive) return;
  if (!status.ok()) {
    // The epoch is ours, and nobody else may go live in it: stop, loudly.
    HaltNow(FtState::kHalted, "going live failed: " + status.ToString());
    return;
  }
  ++epoch_;
  live_at = now;
  Enter(FtState::kUnprotected,
        fmt::format("live in epoch {} after the primary was lost ({})", epoch_, claim_reason_));
}

void VmArbiter::OnTick(TimePoint now) {
  if (!retry_at_ || now < *retry_at_ || stopping_) return;
  if (state_ == FtState::kArbitrating && !claim_in_flight_ && !claim_won_) {
    SendClaim(now);
  } else if (state_ == FtState::kCheckingStore && !read_in_flight_) {
    retry_at_.reset();
    read_in_flight_ = true;
    actions_.ReadStore();
  }
}

}  // namespace ft::arbiter
