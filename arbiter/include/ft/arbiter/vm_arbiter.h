// The one authority over a protected VM's copy on this host (docs/design.md, "Never two live
// copies"). Pure logic: the daemon reports what happened (the store was read, the peer
// connected or was lost, a claim answered, the operator turned FT off, ftd is stopping, time
// passed) and the arbiter answers through Actions (read the store, claim the next epoch,
// start the copy, open the output gate, go live, halt). It never touches a socket, a file or
// a clock of its own. The roles (PrimaryVm, BackupVm) carry out its decisions and decide
// nothing about who runs the VM themselves.
//
// The invariant it keeps: a copy releases output or runs unprotected only while it holds the
// newest epoch in the claim store, won by itself; otherwise its output waits for the backup's
// ack (lockstep) or is never released. Without a claim store (failover off on both hosts,
// which the handshake checks) the backup can never go live, so the primary is the only copy
// that can ever release output and may run alone.
//
// What it takes to get there:
//  - a copy starts only after reading the store: a copy whose epoch is older than a claim
//    won by the other host (or, a primary, whose epoch the other host won) is stale and never
//    runs;
//  - every way to run alone (the backup was lost, it never came, the operator turned FT off)
//    claims the next epoch first and keeps the gate shut until it has won;
//  - claims are always for (this copy's epoch + 1), so a stale copy can never win: the store
//    answers "lost" for an epoch older than its newest record;
//  - a copy whose ftd is stopping, that was handed over, killed by a drill, or whose QEMU
//    failed never opens its gate again.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "ft/shared_disk/test_and_set.h"
#include "ft/status.h"

namespace ft::arbiter {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

enum class Role { kPrimary, kBackup };

enum class FtState {
  kCheckingStore,   // not running yet: reading the claim store's newest epoch first
  kStale,           // the other host holds a newer epoch: this copy never runs
  kWaitingForPeer,  // running (primary: gate shut) or ready (backup); no peer yet
  kProtected,       // in lockstep: the primary releases output as the backup acks it
  kArbitrating,     // claiming the next epoch (a primary holds its output; a backup replays)
  kGoingLive,       // backup: won and caught up; becoming a recording primary
  kUnprotected,     // running alone with the gate open: holds the newest epoch, won by itself
  kHalted,          // stopped for good here: lost a claim, handed over, killed, failed, stopping
};
const char* FtStateName(FtState state);

// The claim store as read before a copy starts (and while a primary waits for its backup).
struct StoreView {
  std::string store_id;                            // compared by the pair's handshake
  std::optional<shared_disk::ClaimRecord> newest;  // none: no claim for this VM yet
};

// Reads `store`'s identity and newest claim for `vm` (blocking: call it off the event loop).
Result<StoreView> ReadStoreView(shared_disk::TestAndSet& store, const std::string& vm);

// What the authority asks of the daemon. ReadStore and Claim answer later (OnStoreRead,
// OnClaimResult); GoLive through OnGoLiveDone.
class Actions {
 public:
  virtual ~Actions() = default;
  virtual void ReadStore() = 0;
  virtual void Claim(const shared_disk::ClaimRequest& request) = 0;
  // Records a won or adopted epoch on this host's disk, before anything acts on it.
  virtual Status RecordEpoch(uint64_t epoch) = 0;
  virtual void StartCopy(uint64_t epoch) = 0;     // primary: record, gate shut; backup: accept
  virtual void OpenGate() = 0;                    // primary: release held output, run alone
  virtual void GoLive(uint64_t new_epoch) = 0;    // backup: replay to the end, then record
  virtual void Halt(const std::string& why) = 0;  // stop this copy (if it runs) for good
};

struct ArbiterConfig {
  std::string vm;
  std::string node;                      // this host's name, written into claims
  bool failover = true;                  // a claim store is configured ([node] shared_storage)
  std::chrono::milliseconds retry{200};  // a claim or store read that failed
};

class VmArbiter {
 public:
  VmArbiter(ArbiterConfig config, Role role, uint64_t epoch, Actions& actions);

  // The copy is to run: read the store first (failover on), then StartCopy or stale.
  void Start(TimePoint now);
  void OnStoreRead(const Result<StoreView>& view, TimePoint now);
  // A primary waiting for its backup re-reads the store on every reconnect attempt: a host
  // that returned while its peer went live must learn it before it runs on.
  void CheckStoreAgain(TimePoint now);

  // The logging channel: the peer's ftd authenticated (same VM, config, epoch, store) ...
  void OnPeerConnected(TimePoint now);
  // ... or it is gone: closed, reset, or silent past the heartbeat timeout.
  void OnPeerLost(const std::string& why, TimePoint now);
  // Backup: the replayer has executed everything received (after the primary was lost).
  void OnCaughtUp(TimePoint now);
  // Primary: the backup never came (max_unacked_mib of log held): claim, then run alone.
  void OnGiveUpWaiting(const std::string& why, TimePoint now);
  // Primary: the operator turned FT off (the peer stopped its copy, or --force). Claims the
  // next epoch first unless this copy already runs alone in the newest epoch. Refused when
  // the copy does not run (stale, halted) or is not the primary.
  Status OnTurnFtOff(const std::string& why, TimePoint now);
  // ftd is stopping: from now on nothing opens the gate or goes live.
  void OnStop(TimePoint now);
  // The copy ends without a claim: handed over (planned failover), killed by a drill, or its
  // QEMU failed. Its gate never opens again.
  void OnCopyEnded(const std::string& why, TimePoint now);
  void OnClaimResult(const Result<shared_disk::ClaimOutcome>& result, TimePoint now);
  void OnGoLiveDone(const Status& status, TimePoint now);
  // Retries a claim or a store read that failed (storage unreachable, full, corrupt).
  void OnTick(TimePoint now);

  Role role() const { return role_; }
  FtState state() const { return state_; }
  uint64_t epoch() const { return epoch_; }          // the epoch this copy runs in
  const std::string& note() const { return note_; }  // why the state is what it is
  bool gate_open() const { return gate_open_; }
  bool ft_off() const { return ft_off_; }
  bool stopping() const { return stopping_; }
  int claims_sent() const { return claims_sent_; }
  const std::string& store_id() const { return store_id_; }
  // The newest claim in the store as last read or answered (stale: who is live, since when).
  const std::optional<shared_disk::ClaimRecord>& newest_claim() const { return newest_; }
  // When the peer was lost, the claim was won and going live ended (for the drill report).
  std::optional<TimePoint> peer_lost_at, claim_won_at, live_at;

 private:
  void Enter(FtState state, std::string note);
  void SendClaim(TimePoint now);
  void MaybeGoLive();
  void OpenGateNow(std::string note, TimePoint now);
  void HaltNow(FtState state, std::string why);
  bool Running() const;
  std::string StaleNote(const shared_disk::ClaimRecord& newest) const;

  ArbiterConfig config_;
  Role role_;
  uint64_t epoch_;
  Actions& actions_;
  FtState state_ = FtState::kCheckingStore;
  std::string note_;
  std::string claim_reason_;
  std::string store_id_;
  std::optional<shared_disk::ClaimRecord> newest_;
  bool started_ = false;
  bool claim_in_flight_ = false;
  bool read_in_flight_ = false;
  bool claim_won_ = false;
  bool caught_up_ = false;
  bool gate_open_ = false;
  bool ft_off_ = false;
  bool stopping_ = false;
  std::optional<TimePoint> retry_at_;
  int claims_sent_ = 0;
};

}  // namespace ft::arbiter
