#include "fake_test_and_set.h"

#include <algorithm>

#include <fmt/format.h>

#include "ft/names.h"
#include "ft/shared_disk/claim_record.h"

namespace ft::fakes {

using shared_disk::ClaimOutcome;
using shared_disk::ClaimRecord;
using shared_disk::ClaimRequest;
using shared_disk::Outcome;

namespace {
Status UnreachableStatus() {
  return Unavailable("fake claim store: storage unreachable (FakeTestAndSet::SetUnreachable)");
}
}  // namespace

void FakeTestAndSet::SetUnreachable(bool on) {
  std::lock_guard lock(mu_);
  unreachable_ = on;
}

void FakeTestAndSet::SetFull(bool on) {
  std::lock_guard lock(mu_);
  full_ = on;
}

void FakeTestAndSet::SetCorrupt(const std::string& vm, uint64_t epoch, bool on) {
  std::lock_guard lock(mu_);
  if (on) {
    corrupt_.insert({vm, epoch});
  } else {
    corrupt_.erase({vm, epoch});
  }
}

void FakeTestAndSet::Put(const ClaimRecord& record) {
  std::lock_guard lock(mu_);
  records_[record.vm][record.epoch] = record;
}

void FakeTestAndSet::SetTimeMs(int64_t unix_time_ms) {
  std::lock_guard lock(mu_);
  time_ms_ = unix_time_ms;
}

int FakeTestAndSet::claim_calls() const {
  std::lock_guard lock(mu_);
  return claim_calls_;
}

void FakeTestAndSet::SetStoreId(std::string id) {
  std::lock_guard lock(mu_);
  store_id_ = std::move(id);
}

Result<ClaimRecord> FakeTestAndSet::ReadLocked(const std::string& vm, uint64_t epoch) const {
  if (unreachable_) return UnreachableStatus();
  if (corrupt_.count({vm, epoch})) {
    return DataLoss(fmt::format("fake claim record '{}/{}': CRC mismatch (SetCorrupt)", vm,
                                shared_disk::ClaimFileName(epoch)));
  }
  auto v = records_.find(vm);
  if (v == records_.end() || !v->second.count(epoch)) {
    return NotFound(fmt::format("no claim record for vm '{}' epoch {}", vm, epoch));
  }
  return v->second.at(epoch);
}

Result<ClaimOutcome> FakeTestAndSet::Claim(const ClaimRequest& request) {
  std::lock_guard lock(mu_);
  ++claim_calls_;
  if (!ft::IsValidName(request.vm)) {
    return InvalidArgument(fmt::format("invalid vm name '{}'", request.vm));
  }
  if (request.epoch == 0) return InvalidArgument("epoch 0 cannot be claimed (epochs start at 1)");
  if (!shared_disk::IsValidNodeName(request.node)) {
    return InvalidArgument(fmt::format("invalid node name '{}'", request.node));
  }
  if (unreachable_) return UnreachableStatus();
  auto& epochs = records_[request.vm];
  auto it = epochs.find(request.epoch);
  if (it == epochs.end()) {
    if (!epochs.empty() && epochs.rbegin()->first > request.epoch) {
      FT_ASSIGN_OR_RETURN(ClaimRecord later, ReadLocked(request.vm, epochs.rbegin()->first));
      return ClaimOutcome{Outcome::kLost, later};
    }
    if (full_) {
      return Unavailable(
          fmt::format("fake claim store: cannot write vm '{}' epoch {}: No space left on device",
                      request.vm, request.epoch));
    }
    it = epochs
             .emplace(
                 request.epoch,
                 ClaimRecord{shared_disk::kClaimRecordVersion, request.vm, request.epoch,
                             request.node, shared_disk::SanitizeReason(request.reason), time_ms_})
             .first;
  } else {
    FT_ASSIGN_OR_RETURN(ClaimRecord existing, ReadLocked(request.vm, request.epoch));
    if (existing.winner != request.node) return ClaimOutcome{Outcome::kLost, existing};
  }
  uint64_t latest = epochs.rbegin()->first;
  if (latest > request.epoch) {
    FT_ASSIGN_OR_RETURN(ClaimRecord later, ReadLocked(request.vm, latest));
    return ClaimOutcome{Outcome::kLost, later};
  }
  return ClaimOutcome{Outcome::kWon, it->second};
}

Result<ClaimRecord> FakeTestAndSet::Read(const std::string& vm, uint64_t epoch) {
  std::lock_guard lock(mu_);
  return ReadLocked(vm, epoch);
}

Result<uint64_t> FakeTestAndSet::LatestEpoch(const std::string& vm) {
  std::lock_guard lock(mu_);
  if (unreachable_) return UnreachableStatus();
  auto v = records_.find(vm);
  if (v == records_.end() || v->second.empty()) return uint64_t{0};
  return v->second.rbegin()->first;
}

Status FakeTestAndSet::Prune(const std::string& vm, uint64_t keep_from) {
  std::lock_guard lock(mu_);
  if (unreachable_) return UnreachableStatus();
  auto v = records_.find(vm);
  if (v == records_.end() || v->second.empty()) return Status::Ok();
  uint64_t limit = std::min(keep_from, v->second.rbegin()->first);
  for (auto it = v->second.begin(); it != v->second.end() && it->first < limit;) {
    corrupt_.erase({vm, it->first});
    it = v->second.erase(it);
  }
  return Status::Ok();
}

Result<std::string> FakeTestAndSet::StoreId() {
  std::lock_guard lock(mu_);
  if (unreachable_) return UnreachableStatus();
  return store_id_;
}

}  // namespace ft::fakes
