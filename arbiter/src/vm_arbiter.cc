#include "ft/arbiter/vm_arbiter.h"

#include <utility>

#include <fmt/format.h>

namespace ft::arbiter {

const char* FtStateName(FtState state) {
  switch (state) {
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

VmArbiter::VmArbiter(ArbiterConfig config, Role role, uint64_t epoch, Actions& actions)
    : config_(std::move(config)), role_(role), epoch_(epoch), actions_(actions) {}

void VmArbiter::Enter(FtState state, std::string note) {
  state_ = state;
  note_ = std::move(note);
}

void VmArbiter::OnPeerConnected(TimePoint) {
  // Only a pair that has never split can (re)join: after a loss the epoch moves on, and
  // the channel's handshake refuses a peer of another epoch.
  if (state_ == FtState::kWaitingForPeer) Enter(FtState::kProtected, "");
}

void VmArbiter::OnGiveUpWaiting(const std::string& why, TimePoint) {
  if (role_ != Role::kPrimary || state_ != FtState::kWaitingForPeer) return;
  Enter(FtState::kUnprotected, why);
  actions_.OpenGate();
}

void VmArbiter::OnPeerLost(const std::string& why, TimePoint now) {
  if (state_ != FtState::kProtected) return;  // nothing to arbitrate (yet, or any more)
  lost_why_ = why;
  peer_lost_at = now;
  Enter(FtState::kArbitrating,
        fmt::format("{} lost ({}); claiming epoch {}",
                    role_ == Role::kPrimary ? "backup" : "primary", why, epoch_ + 1));
  SendClaim(now);
}

void VmArbiter::OnCaughtUp(TimePoint) {
  caught_up_ = true;
  MaybeGoLive();
}

void VmArbiter::SendClaim(TimePoint) {
  claim_in_flight_ = true;
  retry_at_.reset();
  ++claims_sent_;
  shared_disk::ClaimRequest request;
  request.vm = config_.vm;
  request.epoch = epoch_ + 1;
  request.node = config_.node;
  request.reason =
      fmt::format("{} lost: {}", role_ == Role::kPrimary ? "backup" : "primary", lost_why_);
  actions_.Claim(request);
}

void VmArbiter::OnClaimResult(const Result<shared_disk::ClaimOutcome>& result, TimePoint now) {
  if (state_ != FtState::kArbitrating || !claim_in_flight_) return;
  claim_in_flight_ = false;
  if (!result.ok()) {
    // Not won yet: say why, try again, never go live or open the gate on it.
    note_ = fmt::format("claim of epoch {} not decided: {}; retrying", epoch_ + 1,
                        result.status().ToString());
    retry_at_ = now + config_.claim_retry;
    return;
  }
  const auto& outcome = *result;
  if (!outcome.won()) {
    Enter(FtState::kHalted,
          fmt::format("lost epoch {} to '{}' ({}): halting this copy", outcome.record.epoch,
                      outcome.record.winner, outcome.record.reason));
    actions_.Halt(note_);
    return;
  }
  claim_won_ = true;
  claim_won_at = now;
  if (role_ == Role::kPrimary) {
    ++epoch_;
    live_at = now;
    Enter(FtState::kUnprotected,
          fmt::format("won epoch {}; running alone: backup lost ({})", epoch_, lost_why_));
    actions_.OpenGate();
    return;
  }
  note_ = fmt::format("won epoch {}; replaying what was received before going live", epoch_ + 1);
  MaybeGoLive();
}

void VmArbiter::MaybeGoLive() {
  if (role_ != Role::kBackup || state_ != FtState::kArbitrating || !claim_won_ || !caught_up_) {
    return;
  }
  Enter(FtState::kGoingLive, fmt::format("won epoch {}; going live", epoch_ + 1));
  actions_.GoLive(epoch_ + 1);
}

void VmArbiter::OnGoLiveDone(const Status& status, TimePoint now) {
  if (state_ != FtState::kGoingLive) return;
  if (!status.ok()) {
    // The epoch is ours, and nobody else may go live in it: stop, loudly.
    Enter(FtState::kHalted, "going live failed: " + status.ToString());
    actions_.Halt(note_);
    return;
  }
  ++epoch_;
  live_at = now;
  Enter(FtState::kUnprotected,
        fmt::format("live in epoch {} after the primary was lost ({})", epoch_, lost_why_));
}

void VmArbiter::OnTick(TimePoint now) {
  if (state_ == FtState::kArbitrating && !claim_in_flight_ && !claim_won_ && retry_at_ &&
      now >= *retry_at_) {
    SendClaim(now);
  }
}

}  // namespace ft::arbiter
