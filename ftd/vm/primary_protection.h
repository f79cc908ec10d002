// A primary's protection without QEMU, sockets or timers: the log it holds for the backup,
// the acks that release output, pacing, the guard against a replay that stands still, and
// the drain of a planned failover. PrimaryVm (primary_vm.cc) feeds it what happens -- log
// read, backup connected, ack, channel lost, a tick every 20 ms -- and it acts on its ports
// (ports.h); the unit tests drive it with fakes and a clock they step by hand.
//
// Invariants it keeps (docs/design.md, "Output commit" and "Pacing"):
//  - output is released only up to log the backup acknowledged (OutputGate::Release with
//    the acked offset, never more, never backwards);
//  - every log byte read while a backup may still connect is held until acked, and a backup
//    that connects is sent all of it from the first held byte;
//  - a lost backup, whatever the cause, is told to the authority, which alone decides what
//    this copy does next (claim, run alone, or halt); what was held for it is dropped.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>

#include "ports.h"
#include "unacked_log.h"
#include "vm_log.h"

namespace ft::daemon {

struct PrimaryLimits {
  uint64_t max_unacked_bytes = 0;  // max_unacked_mib
  int max_lag_ms = 100;
  int icount_shift = 5;
  // A backup whose replay stands still this long while the vCPU is held for it is lost:
  // pacing must never turn into a stalled primary.
  std::chrono::milliseconds replay_stall_timeout{5000};
};

struct PrimaryPorts {
  TimeSource* time = nullptr;
  Authority* authority = nullptr;
  RecordLog* log = nullptr;
  OutputGate* gate = nullptr;  // null: no NIC served by ftd (nothing to release)
};

class PrimaryProtection {
 public:
  PrimaryProtection(PrimaryPorts ports, PrimaryLimits limits, const VmLog& vlog);

  // After the authority heard that the backup is lost (for any reason): the role updates
  // its note, stops reconnecting, finishes a stop that waited for acks.
  void OnBackupLost(std::function<void(const Status& why)> fn) { on_lost_ = std::move(fn); }

  // ---- events
  // Log bytes the tap read at `offset`: held and sent while a backup may need them.
  void OnLog(uint64_t offset, std::string_view bytes);
  // A backup connected: the authority hears, and it is sent everything held since start.
  void OnBackupConnected(BackupLink* link);
  // The backup received the log up to `received` and replayed to `replayed_icount`.
  void OnAck(uint64_t received, uint64_t replayed_icount);
  // The channel closed or the backup misbehaved: to the authority.
  void OnLinkLost(const Status& why);
  // No backup to hold the log for any more (lost, halted, running alone): what is held is
  // dropped, the link is closed, pacing lets go.
  void StopHolding();
  // Every tick: the replay-stall guard, then pacing.
  void OnTick();
  void Pace();
  // ftd stops this copy: no pacing from here (QEMU's last log writes must not block).
  void Stopping();

  // ---- planned failover: the vCPU stops, the backup acks the whole log
  void BeginHandover();  // pacing lets go, so a vCPU held in a log write can stop
  enum class Drain { kWaiting, kDone, kBackupLost, kTimedOut };
  // kDone once QEMU's whole log is read and acked; nothing after that end is sent.
  Drain CheckDrain(SteadyTime deadline);
  void EndHandover();  // abandoned: pacing and the log flow again
  bool handing_over() const { return handing_over_; }

  // ---- what status and log lines show
  bool connected() const { return link_ != nullptr; }
  uint64_t acked() const { return acked_; }
  uint64_t replayed_icount() const { return replayed_icount_; }
  uint64_t unacked_bytes() const { return unacked_.size(); }
  // The log's icount as QEMU wrote it (the shim scans every byte it is given), which is
  // ahead of what the tap has read when ftd reads late; the tap's if the shim's is unknown.
  uint64_t log_icount() const;
  uint64_t lag_instructions() const;
  SteadyTime last_ack() const { return last_ack_; }
  bool vcpu_held() const { return vcpu_held_; }
  SteadyTime vcpu_held_since() const { return vcpu_held_at_; }

 private:
  SteadyTime Now() const { return ports_.time->Now(); }
  bool Holding() const;  // waiting for a backup or protected: the log is held
  void ApplyIcountLimit(uint64_t limit);
  void ReportOverBound(double lag_ms, double hold_at_ms, double span_ms);
  void CheckReplayProgress();

  PrimaryPorts ports_;
  PrimaryLimits limits_;
  const VmLog& vlog_;
  std::function<void(const Status&)> on_lost_;
  BackupLink* link_ = nullptr;
  // Log bytes [unacked_.base(), read) not yet acked by the backup.
  UnackedLog unacked_;
  uint64_t acked_ = 0, replayed_icount_ = 0;
  SteadyTime last_ack_{}, last_replay_progress_{}, last_over_report_{};
  uint64_t icount_limit_ = 0;
  bool vcpu_held_ = false;  // as last seen in the shim
  SteadyTime vcpu_held_at_{};
  bool stopping_ = false;
  bool handing_over_ = false;
  uint64_t handover_end_ = 0;  // the log drained to: nothing after it is sent
};

}  // namespace ft::daemon
