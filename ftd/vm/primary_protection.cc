#include "primary_protection.h"

#include <algorithm>

#include <fmt/format.h>

#include "pacing.h"

namespace ft::daemon {

using arbiter::FtState;

PrimaryProtection::PrimaryProtection(PrimaryPorts ports, PrimaryLimits limits, const VmLog& vlog)
    : ports_(ports), limits_(limits), vlog_(vlog) {}

bool PrimaryProtection::Holding() const {
  FtState state = ports_.authority->state();
  return state == FtState::kWaitingForPeer || state == FtState::kProtected;
}

uint64_t PrimaryProtection::log_icount() const {
  uint64_t read = ports_.log->read_icount();
  if (auto written = ports_.log->written_icount()) return std::max(read, *written);
  return read;
}

uint64_t PrimaryProtection::lag_instructions() const {
  uint64_t at = log_icount();
  return at > replayed_icount_ ? at - replayed_icount_ : 0;
}

void PrimaryProtection::OnLog(uint64_t offset, std::string_view bytes) {
  // A planned failover drained the log to `handover_end_`: the stopped recorder still
  // writes main-loop checkpoints, which must not move the end the backup accepted.
  if (handover_end_) return;
  // Nobody to hold it for (any more): the log is read and dropped.
  if (!Holding()) return;
  unacked_.Append(bytes);
  if (link_) link_->SendLog(offset, bytes);
  if (ports_.authority->state() == FtState::kWaitingForPeer &&
      unacked_.size() > limits_.max_unacked_bytes) {
    std::string why =
        fmt::format("the backup did not connect before {} MiB of log accumulated (max_unacked_mib)",
                    limits_.max_unacked_bytes >> 20);
    // The authority claims the next epoch first; the gate opens only once it is won.
    ports_.authority->GiveUpWaiting(why);
    StopHolding();
    return;
  }
  Pace();
}

void PrimaryProtection::OnBackupConnected(BackupLink* link) {
  link_ = link;
  ports_.authority->PeerConnected();
  last_ack_ = Now();
  // Everything since offset 0 is still held: the backup starts from the beginning.
  unacked_.ForEachRun(
      [this](uint64_t offset, std::string_view run) { link_->SendLog(offset, run); });
}

void PrimaryProtection::OnAck(uint64_t received, uint64_t replayed_icount) {
  last_ack_ = Now();
  if (replayed_icount != replayed_icount_) last_replay_progress_ = last_ack_;
  replayed_icount_ = replayed_icount;
  if (received > acked_) {
    unacked_.Ack(received);
    acked_ = received;
    if (ports_.gate) ports_.gate->Release(acked_);
  }
  Pace();
}

void PrimaryProtection::OnLinkLost(const Status& why) {
  if (BackupLink* link = std::exchange(link_, nullptr)) link->Close();
  // The authority decides: claim the next epoch (output held until won), run alone when
  // failover is off, or, while ftd stops, drop what is held and release nothing.
  ports_.authority->PeerLost(why.ToString());
  StopHolding();
  if (on_lost_) on_lost_(why);
}

void PrimaryProtection::StopHolding() {
  unacked_.Clear();
  if (BackupLink* link = std::exchange(link_, nullptr)) link->Close();
  Pace();
}

void PrimaryProtection::Stopping() {
  stopping_ = true;
  Pace();
}

void PrimaryProtection::OnTick() {
  CheckReplayProgress();
  Pace();
}

void PrimaryProtection::CheckReplayProgress() {
  if (ports_.authority->state() != FtState::kProtected || !vcpu_held_) return;
  SteadyTime since = std::max(last_replay_progress_, vcpu_held_at_);
  if (Now() - since < limits_.replay_stall_timeout) return;
  OnLinkLost(Unavailable(fmt::format(
      "the backup's replay made no progress for {} s at icount {} ({:.0f} ms of guest time "
      "behind) while this primary was held for it",
      std::chrono::duration_cast<std::chrono::seconds>(limits_.replay_stall_timeout).count(),
      replayed_icount_, GuestMs(lag_instructions(), limits_.icount_shift))));
}

// Pacing: the shim holds the vCPU before its next log event once the log QEMU wrote passes
// the limit (pacing.h says where the limit is and why). From the moment the backup is
// connected, before its replayer runs: the shim holds the vCPU only between whole events, so
// the log the backup has always ends in complete spans, and its replayer can start and catch
// up while the vCPU waits. The limit moves with every ack. Memory: the log is not read while
// more than max_unacked is held, so QEMU blocks in its writes.
void PrimaryProtection::Pace() {
  PacingInput in;
  in.pace = ports_.authority->state() == FtState::kProtected && !stopping_ && !handing_over_;
  in.replayed_icount = replayed_icount_;
  in.lag_instructions = lag_instructions();
  in.recent_max_span = ports_.log->recent_max_span();
  in.icount_shift = limits_.icount_shift;
  in.max_lag_ms = limits_.max_lag_ms;
  in.unacked_bytes = unacked_.size();
  in.max_unacked_bytes = limits_.max_unacked_bytes;
  const PacingDecision d = DecidePacing(in);
  ApplyIcountLimit(d.icount_limit);
  if (d.over_bound) ReportOverBound(d.lag_ms, d.hold_at_ms, d.span_ms);
  if (d.read == PacingDecision::Read::kResume) {
    ports_.log->ResumeReading();
  } else if (d.read == PacingDecision::Read::kPause) {
    ports_.log->PauseReading();
  }
}

void PrimaryProtection::ApplyIcountLimit(uint64_t limit) {
  if (!ports_.log->written_bytes()) return;  // QEMU has not opened its log yet
  if (limit != icount_limit_) {
    ports_.log->SetIcountLimit(limit);
    icount_limit_ = limit;
  }
  bool held = ports_.log->vcpu_held();
  if (held == vcpu_held_) return;
  vcpu_held_ = held;
  if (held) vcpu_held_at_ = Now();
  vlog_.debug("pacing: vCPU {} (backup {:.0f} ms behind, limit icount {})",
              held ? "held" : "released", GuestMs(lag_instructions(), limits_.icount_shift), limit);
}

// Says (at most once a second) when the lag is over the bound, with what pacing knew.
void PrimaryProtection::ReportOverBound(double lag, double hold_at, double span) {
  SteadyTime now = Now();
  if (last_over_report_ != SteadyTime{} && now - last_over_report_ < std::chrono::seconds(1)) {
    return;
  }
  last_over_report_ = now;
  uint64_t read = ports_.log->read_bytes();
  uint64_t written = ports_.log->written_bytes().value_or(read);
  vlog_.info(
      "backup {:.0f} ms behind, over max_lag_ms {} (vCPU {} for {} ms; hold point "
      "{:.0f} ms, longest recent span {:.1f} ms, last ack {} ms ago, log icount {} written "
      "/ {} read, {} log bytes not read yet)",
      lag, limits_.max_lag_ms, vcpu_held_ ? "held" : "running",
      vcpu_held_ ? MsBetween(vcpu_held_at_, now) : 0, hold_at, span, MsBetween(last_ack_, now),
      ports_.log->written_icount().value_or(0), ports_.log->read_icount(),
      written > read ? written - read : 0);
}

void PrimaryProtection::BeginHandover() {
  handing_over_ = true;
  Pace();  // no pacing now: a vCPU held in a log write could not stop
}

PrimaryProtection::Drain PrimaryProtection::CheckDrain(SteadyTime deadline) {
  if (ports_.authority->state() != FtState::kProtected || !link_) return Drain::kBackupLost;
  auto written = ports_.log->written_bytes();
  uint64_t end = ports_.log->read_bytes();
  if (written && end == *written && acked_ == end) {
    handover_end_ = end;
    return Drain::kDone;
  }
  if (Now() >= deadline) return Drain::kTimedOut;
  return Drain::kWaiting;
}

void PrimaryProtection::EndHandover() {
  handing_over_ = false;
  handover_end_ = 0;
  Pace();
}

}  // namespace ft::daemon
