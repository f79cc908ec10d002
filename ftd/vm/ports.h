// The seams of the per-VM controller: what a role's pure parts (PrimaryProtection,
// BackupFollow, GoLive) act on, as small interfaces. The roles (primary_vm.cc, backup_vm.cc)
// give them the real collaborators -- the log tap and the flush shim's counters, the logging
// channel, the NIC's output gate, the authority (Failover) and the steady clock -- and the
// unit tests give them fakes and a clock they step by hand (tests/unit/ftd/vm/fakes.h), as
// LevelDB's Env and Envoy's TimeSource do. Nothing here includes asio, QEMU or the channel.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "ft/arbiter/vm_arbiter.h"
#include "ft/status.h"

namespace ft::daemon {

using SteadyTime = std::chrono::steady_clock::time_point;

// The clock the controller reads. Only steady time: wall time is the claim store's business.
class TimeSource {
 public:
  virtual ~TimeSource() = default;
  virtual SteadyTime Now() const = 0;
};

// std::chrono::steady_clock, for the daemon.
TimeSource& SteadyTimeSource();

// Milliseconds from `from` to `to`, or -1 if `from` never happened (a default time point).
inline int64_t MsBetween(SteadyTime from, SteadyTime to) {
  if (from == SteadyTime{}) return -1;
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

// The VM's authority (Failover, around the pure arbiter): a role reports what happened to
// it and reads what it decided. Its decisions come back through FailoverHooks.
class Authority {
 public:
  virtual ~Authority() = default;
  virtual arbiter::FtState state() const = 0;
  virtual bool on() const = 0;  // a claim store is configured: failover is possible
  virtual void PeerConnected() = 0;
  virtual void PeerLost(const std::string& why) = 0;
  virtual void CaughtUp() = 0;
  virtual void GiveUpWaiting(const std::string& why) = 0;
  virtual void CopyEnded(const std::string& why) = 0;
  // Backup: the steps of going live, timed for status and benchmarks.
  virtual void MarkReplayEnded() = 0;
  virtual void MarkSnapshotSaved() = 0;
  virtual void GoLiveDone(const Status& status) = 0;
};

// The record log as a primary sees it: what ftd has read of it (the tap) and what QEMU has
// written (the flush shim's counters, mapped once QEMU has opened its log).
class RecordLog {
 public:
  virtual ~RecordLog() = default;
  virtual uint64_t read_bytes() const = 0;
  virtual uint64_t read_icount() const = 0;  // at the end of the last complete event read
  virtual uint64_t recent_max_span() const = 0;
  virtual void PauseReading() = 0;
  virtual void ResumeReading() = 0;
  // The shim's side; nullopt until QEMU has opened its log.
  virtual std::optional<uint64_t> written_bytes() = 0;
  // nullopt also when the shim's scan failed (the tap's icount is used then).
  virtual std::optional<uint64_t> written_icount() = 0;
  // Pacing: the vCPU waits before a log event past `limit` (0: no limit).
  virtual void SetIcountLimit(uint64_t limit) = 0;
  virtual bool vcpu_held() = 0;  // waiting for the limit right now
};

// The logging channel to the backup, while one is connected.
class BackupLink {
 public:
  virtual ~BackupLink() = default;
  virtual void SendLog(uint64_t offset, std::string_view bytes) = 0;
  virtual void Close() = 0;  // closes the channel; the link is not used after it
};

// The output gate of the VM's NIC (net::GuestNic): frames leave once the log that covers
// them is acknowledged. Opening it is not here: only the authority's open_gate hook does
// that (docs/design.md, "Never two live copies").
class OutputGate {
 public:
  virtual ~OutputGate() = default;
  virtual void Release(uint64_t acked_log_bytes) = 0;
};

// The backup's replay (the ReplayFeeder driving the replaying QEMU), as far as deciding what
// a lost primary means needs it.
class ReplayProgress {
 public:
  virtual ~ReplayProgress() = default;
  virtual bool started() const = 0;    // a replaying QEMU was started
  virtual bool caught_up() const = 0;  // it replayed everything received (or holds there)
  virtual bool ended() const = 0;      // the log's END was received and fed
  virtual uint64_t received_icount() const = 0;
  virtual uint64_t replayed_icount() const = 0;
  virtual uint64_t break_icount() const = 0;
};

}  // namespace ft::daemon
