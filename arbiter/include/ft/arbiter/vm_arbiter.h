// One protected VM's side of failover (design rule 3), as pure logic. It never touches a
// socket, a file or a clock of its own: the daemon reports what happened (the peer
// connected or was lost, the backup caught up, a claim answered, go-live finished, time
// passed) and the arbiter answers through Actions (claim the next epoch, open the output
// gate, go live, halt).
//
// The rule it keeps: a copy goes live only after winning the test-and-set for the VM's
// next epoch on shared storage. A primary that loses its backup holds its output until it
// has won; a backup whose primary is lost replays everything it received and goes live
// only once it has won. The loser halts. Storage that is unreachable or full means "not
// won yet": keep trying, never go live. So two live copies cannot happen, whatever order
// deaths, partitions and storage failures come in.
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
  kWaitingForPeer,  // primary: no backup yet; backup: no primary yet
  kProtected,       // in lockstep: the primary gates its output on the backup's acks
  kArbitrating,     // the peer is lost: claiming the next epoch (a primary holds its output;
                    // a backup replays what it received)
  kGoingLive,       // backup: won and caught up; becoming a recording primary
  kUnprotected,     // running alone (a primary that won, or a backup that went live)
  kHalted,          // lost the claim, or go-live failed: this copy is stopped
};
const char* FtStateName(FtState state);

// What the arbiter asks of the daemon. Claim and GoLive answer later, through
// OnClaimResult and OnGoLiveDone.
class Actions {
 public:
  virtual ~Actions() = default;
  virtual void Claim(const shared_disk::ClaimRequest& request) = 0;
  virtual void OpenGate() = 0;                    // primary: release held output, run alone
  virtual void GoLive(uint64_t new_epoch) = 0;    // backup: replay to the end, then record
  virtual void Halt(const std::string& why) = 0;  // stop this copy of the VM
};

struct ArbiterConfig {
  std::string vm;
  std::string node;  // this host's name, written into claims
  std::chrono::milliseconds claim_retry{200};
};

class VmArbiter {
 public:
  VmArbiter(ArbiterConfig config, Role role, uint64_t epoch, Actions& actions);

  // The logging channel: the peer's ftd authenticated (same VM, config, epoch) ...
  void OnPeerConnected(TimePoint now);
  // ... or it is gone: closed, reset, or silent past the heartbeat timeout.
  void OnPeerLost(const std::string& why, TimePoint now);
  // Backup: the replayer has executed everything received (after the primary was lost).
  void OnCaughtUp(TimePoint now);
  // A primary that never had a backup gives up waiting (e.g. max_unacked_mib): it runs
  // alone without a claim, since no backup holds any of its log.
  void OnGiveUpWaiting(const std::string& why, TimePoint now);
  void OnClaimResult(const Result<shared_disk::ClaimOutcome>& result, TimePoint now);
  void OnGoLiveDone(const Status& status, TimePoint now);
  // Retries a claim that failed (storage unreachable, full, corrupt).
  void OnTick(TimePoint now);

  Role role() const { return role_; }
  FtState state() const { return state_; }
  uint64_t epoch() const { return epoch_; }          // the epoch this copy runs in
  const std::string& note() const { return note_; }  // why the state is what it is
  int claims_sent() const { return claims_sent_; }
  // When the peer was lost, the claim was won and going live ended (for the drill report).
  std::optional<TimePoint> peer_lost_at, claim_won_at, live_at;

 private:
  void Enter(FtState state, std::string note);
  void SendClaim(TimePoint now);
  void MaybeGoLive();

  ArbiterConfig config_;
  Role role_;
  uint64_t epoch_;
  Actions& actions_;
  FtState state_ = FtState::kWaitingForPeer;
  std::string note_;
  std::string lost_why_;
  bool claim_in_flight_ = false;
  bool claim_won_ = false;
  bool caught_up_ = false;
  std::optional<TimePoint> retry_at_;
  int claims_sent_ = 0;
};

}  // namespace ft::arbiter
