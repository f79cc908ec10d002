// An in-memory TestAndSet with the same semantics as the real backends (idempotent retry,
// a later epoch beats a stale claim, Prune keeps the latest record), plus switches for the
// storage failures the arbiter must survive. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "ft/shared_disk/test_and_set.h"
#include "ft/status.h"

namespace ft::fakes {

class FakeTestAndSet final : public shared_disk::TestAndSet {
 public:
  // Every call fails with Unavailable ("storage unreachable"), as when the share is gone.
  void SetUnreachable(bool on);
  // A claim that would create a record fails with Unavailable ("no space left"); reading an
  // existing record, an idempotent retry and Prune still work, as on a full filesystem.
  void SetFull(bool on);
  // Reading (vm, epoch) fails with DataLoss until the record is pruned.
  void SetCorrupt(const std::string& vm, uint64_t epoch, bool on = true);
  // Stores a record as if another node had claimed it.
  void Put(const shared_disk::ClaimRecord& record);
  // The time written into new records.
  void SetTimeMs(int64_t unix_time_ms);
  // How many times Claim was called (whatever it answered).
  int claim_calls() const;
  // The id StoreId answers ("fake-store" until set), so that a test can give the two hosts of
  // a pair the same store or different ones.
  void SetStoreId(std::string id);

  Result<shared_disk::ClaimOutcome> Claim(const shared_disk::ClaimRequest& request) override;
  Result<shared_disk::ClaimRecord> Read(const std::string& vm, uint64_t epoch) override;
  Result<uint64_t> LatestEpoch(const std::string& vm) override;
  Status Prune(const std::string& vm, uint64_t keep_from) override;
  Result<std::string> StoreId() override;

 private:
  Result<shared_disk::ClaimRecord> ReadLocked(const std::string& vm, uint64_t epoch) const;

  mutable std::mutex mu_;
  std::map<std::string, std::map<uint64_t, shared_disk::ClaimRecord>> records_;
  std::set<std::pair<std::string, uint64_t>> corrupt_;
  bool unreachable_ = false;
  bool full_ = false;
  int64_t time_ms_ = 1'700'000'000'000;
  int claim_calls_ = 0;
  std::string store_id_ = "fake-store";
};

}  // namespace ft::fakes
