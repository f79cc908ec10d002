// One VM on this node in its fault-tolerance role: unprotected (plain QEMU), the primary of a
// pair (records and streams its log), or the backup (replays the primary's log live).
// The daemon holds one ManagedVm per [vm] section and talks to all three the same way.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "ft/daemon/config.h"
#include "ft/domain/vm_spec.h"
#include "ft/net/guest_nic.h"
#include "ft/status.h"

namespace asio {
class io_context;
}
namespace ft::channel {
class Session;
struct Identity;
}  // namespace ft::channel

namespace ft::daemon {

// A protected VM's failover (arbiter/): its state and when each step was reached, as
// CLOCK_MONOTONIC nanoseconds (0: not reached), so a drill can split the failover time.
struct FailoverReport {
  VmFtState state = VmFtState::kCheckingStore;  // the authority's (waiting-for-peer for both)
  std::string shared_storage;
  std::string store_id;  // the claim store's identity, as read at start
  // The newest claim in the store as last read (stale: who is live, and since when).
  uint64_t newest_epoch = 0;
  std::string newest_winner, newest_reason;
  int64_t newest_unix_ms = 0;
  int claims_sent = 0;
  int64_t peer_lost_ns = 0, caught_up_ns = 0, claim_won_ns = 0, replay_ended_ns = 0,
          snapshot_saved_ns = 0, live_ns = 0;
};

// Where a copy saved for re-protection stopped.
struct ReprotectPoint {
  std::optional<uint32_t> guest_ipv4;  // learnt by its NIC, for the next copy's announcement
  std::string saved_drive;             // the VM-state drive holding kReprotectSnapshot
};

// A re-protection in progress or the last one's outcome, for status (Operations fills it).
struct ReprotectReport {
  std::string phase;  // saving, shipping, starting-backup, connecting, protected, failed
  uint64_t bytes_sent = 0, bytes_total = 0;
  int64_t pause_ms = -1;  // the VM's pause for the snapshot; -1 until known
  int64_t elapsed_ms = 0;
  std::string note;  // why the last attempt failed
};

// What `ftctl status` shows about a VM.
struct VmReport {
  std::string name, mode, ft_note, peer;
  VmState state = VmState::kStopped;
  FtRole role = FtRole::kOff;
  VmFtState ft_state = VmFtState::kOff;
  std::string console_log, monitor_socket, last_error;
  int qemu_pid = 0;
  uint64_t uptime_ms = 0, epoch = 0;
  uint64_t log_bytes = 0, acked_bytes = 0, log_icount = 0, replayed_icount = 0;
  uint64_t lag_instructions = 0, paced_ms = 0, channel_rtt_us = 0;
  double lag_ms = 0, log_bytes_per_sec = 0;
  int64_t last_ack_ms_ago = -1;
  std::optional<net::NicStats> nic;        // when ftd serves the NIC
  std::optional<FailoverReport> failover;  // when the node has shared_storage
  std::optional<ReprotectReport> reprotect;
};

class ManagedVm {
 public:
  virtual ~ManagedVm() = default;
  virtual const std::string& name() const = 0;
  // What this host runs (a backup's disks are its replicas).
  virtual const domain::VmSpec& spec() const = 0;
  virtual FtRole role() const = 0;
  // Starts the VM's part (may start QEMU now or, for a backup, when its primary connects).
  virtual Status Start() = 0;
  // Stops everything this VM runs; `done` runs once all of it is gone.
  virtual void Stop(std::function<void()> done) = 0;
  virtual void OnChildSignal() = 0;
  virtual VmReport Report() const = 0;

  // Backup only: the identity a connecting primary must match, or why it is refused.
  virtual Result<channel::Identity> ExpectPrimary();
  // Backup only: an authenticated primary whose identity matched.
  virtual void AdoptSession(std::shared_ptr<channel::Session> session);

  // ---- operations (ftctl disable / failover / drill). The defaults refuse: kFailedPrecondition
  // naming the VM and its role.

  // Primary: FT off by the operator. The channel closes without a failover (the peer was told
  // first) and this copy runs on, unprotected.
  virtual Status TurnFtOff(const std::string& why);
  // Primary, planned switchover, step 1: stop the vCPU and wait (at most `timeout`) until the
  // backup has acknowledged the whole log; `done` gets the log's length.
  virtual void DrainForHandover(std::chrono::milliseconds timeout,
                                std::function<void(Result<uint64_t>)> done);
  // Step 2, once the backup accepted: close the channel (the backup goes live at once) and
  // stop this copy for good. kAborted when the channel dropped meanwhile (the failover claim
  // decides then, and this copy is left to it).
  virtual Status CompleteHandover(const std::string& to_node);
  // Step 2 instead, when the backup refused: run on as before.
  virtual void AbortHandover(const std::string& why);
  // Primary, drill: kill this copy's QEMU and go silent on the channel, as a dead host would.
  virtual Status PlayDead();
  // Backup: the primary stopped for a planned switchover with `log_end` bytes of log; when
  // its channel closes next, this copy goes live (kFailedPrecondition if bytes are missing or
  // failover is off).
  virtual Status AcceptHandover(uint64_t log_end);

  // ---- re-protection (docs/design.md, "Re-protection")
  // A copy that runs unprotected, step 1: stop the vCPU, save the VM (kReprotectSnapshot in
  // the VM-state drive, which stays) and quit QEMU. On error the VM runs on as before.
  virtual void SaveForReprotect(std::function<void(Result<ReprotectPoint>)> done);
  // The primary that continues it, once the new backup runs on the peer: connect to it.
  // `replica_digest` is the shipped disks' (the handshake compares it with the backup's).
  virtual Status BeginProtection(const std::string& replica_digest);
  // ... or the re-protection failed: run unprotected (claiming the next epoch first).
  virtual void AbandonProtection(const std::string& why);
};

std::unique_ptr<ManagedVm> MakeManagedVm(asio::io_context& io, const NodeConfig& node,
                                         const domain::VmSpec& spec, FtRole role);

}  // namespace ft::daemon
