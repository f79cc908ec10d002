// Failover arbitration (design rule 3): an atomic test-and-set per (VM, epoch) on storage both
// hosts share. A copy goes live only after winning the claim for the VM's next epoch; the
// loser halts its copy. Never two live copies.
//
// The interface is small and pure virtual so that the arbiter is unit-tested against a fake
// (tests/fakes/fake_test_and_set.h) and other backends (sanlock, etcd) can sit behind it.
#pragma once

#include <cstdint>
#include <string>

#include "ft/names.h"
#include "ft/status.h"

namespace ft::shared_disk {

// What a node asks for: (vm, epoch) for itself.
struct ClaimRequest {
  std::string vm;      // a VM name (IsValidVmName)
  uint64_t epoch = 0;  // >= 1; epoch 0 means "no claim yet"
  std::string node;    // who wants to win (IsValidNodeName)
  std::string reason;  // for people: "primary host lost: heartbeat timeout". Control
                       // characters become spaces, longer than kMaxReasonBytes is cut.
};

// The stored answer: who won (vm, epoch), why, and when (the winner's wall clock).
struct ClaimRecord {
  uint32_t format_version = 0;
  std::string vm;
  uint64_t epoch = 0;
  std::string winner;
  std::string reason;
  int64_t unix_time_ms = 0;

  bool operator==(const ClaimRecord&) const = default;
};

enum class Outcome {
  kWon,   // (vm, epoch) is the caller's: it may go live / open its output gate
  kLost,  // someone else holds (vm, epoch) or a later epoch: the record says who; halt
};

struct ClaimOutcome {
  Outcome outcome = Outcome::kLost;
  ClaimRecord record;  // kWon: the caller's record. kLost: the record that beat it
  bool won() const { return outcome == Outcome::kWon; }
};

class TestAndSet {
 public:
  virtual ~TestAndSet() = default;

  // Atomically claims (vm, epoch) for request.node. For each (vm, epoch) at most one node ever
  // gets kWon.
  //  - kWon if this call created the record, or the existing record already names the same
  //    node (an idempotent retry after a crash), and no record of a later epoch of the vm
  //    exists (a node coming back with a stale epoch must never win, even once old epochs
  //    were pruned).
  //  - kLost otherwise, with the record that beat the caller: the (vm, epoch) record if
  //    another node holds it, else the latest epoch's (record.epoch > request.epoch). A stale
  //    claim creates no record.
  //  - An error Status means "not won yet": storage unreachable, full or corrupt. Callers
  //    keep trying and never go live on it. Invalid names are InvalidArgument.
  virtual Result<ClaimOutcome> Claim(const ClaimRequest& request) = 0;

  // The record for (vm, epoch): NotFound if none.
  virtual Result<ClaimRecord> Read(const std::string& vm, uint64_t epoch) = 0;

  // The highest epoch with a record for vm, 0 if none: how a restarted node learns the
  // current epoch.
  virtual Result<uint64_t> LatestEpoch(const std::string& vm) = 0;

  // Removes the records of vm with epoch < keep_from, except that the latest record is
  // always kept (it is what makes stale claims lose).
  virtual Status Prune(const std::string& vm, uint64_t keep_from) = 0;

  // The store's identity, compared by the two hosts' handshake: two hosts that decide
  // failovers on different stores could both win, so a pair whose ids differ is refused.
  // Stable for the store's life; errors as for the other calls (Unavailable: unreachable).
  virtual Result<std::string> StoreId() = 0;
};

}  // namespace ft::shared_disk
