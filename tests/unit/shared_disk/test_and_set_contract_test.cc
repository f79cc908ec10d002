// What every TestAndSet backend promises (test_and_set.h), run against the shared-directory
// backend and the fake the arbiter's tests use, so the fake cannot drift from the real thing.
#include <gtest/gtest.h>

#include <memory>

#include "fake_test_and_set.h"
#include "ft/shared_disk/shared_directory.h"
#include "test_dirs.h"

namespace ft::shared_disk {
namespace {

struct DirectoryBackend {
  testing::ScratchDir dir;
  std::unique_ptr<TestAndSet> Make() {
    EXPECT_TRUE(SharedDirectoryTestAndSet::Initialize(dir.path()).ok());
    return std::make_unique<SharedDirectoryTestAndSet>(dir.path());
  }
};

struct FakeBackend {
  std::unique_ptr<TestAndSet> Make() { return std::make_unique<fakes::FakeTestAndSet>(); }
};

template <typename Backend>
class TestAndSetContract : public ::testing::Test {
 protected:
  Backend backend_;
  std::unique_ptr<TestAndSet> store_ = backend_.Make();

  ClaimOutcome MustClaim(const std::string& vm, uint64_t epoch, const std::string& node) {
    Result<ClaimOutcome> r = store_->Claim({vm, epoch, node, "test"});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : ClaimOutcome{};
  }
};

using Backends = ::testing::Types<DirectoryBackend, FakeBackend>;
TYPED_TEST_SUITE(TestAndSetContract, Backends);

TYPED_TEST(TestAndSetContract, TheStoreHasOneStableId) {
  Result<std::string> id = this->store_->StoreId();
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_FALSE(id->empty());
  this->MustClaim("web1", 1, "hostA");
  EXPECT_EQ(*this->store_->StoreId(), *id);
}

TYPED_TEST(TestAndSetContract, FirstClaimWinsTheOtherNodeLearnsTheWinnerRetryIsIdempotent) {
  Result<ClaimOutcome> first = this->store_->Claim({"web1", 1, "hostB", "primary host lost"});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->outcome, Outcome::kWon);
  EXPECT_EQ(first->record.winner, "hostB");
  EXPECT_EQ(first->record.vm, "web1");
  EXPECT_EQ(first->record.epoch, 1u);
  EXPECT_EQ(first->record.reason, "primary host lost");
  EXPECT_EQ(first->record.format_version, 1u);
  EXPECT_GT(first->record.unix_time_ms, 0);

  ClaimOutcome second = this->MustClaim("web1", 1, "hostA");
  EXPECT_EQ(second.outcome, Outcome::kLost);
  EXPECT_EQ(second.record, first->record);  // says who won, why and when

  ClaimOutcome again = this->MustClaim("web1", 1, "hostB");
  EXPECT_EQ(again.outcome, Outcome::kWon);
  EXPECT_EQ(again.record, first->record);  // the original record, not a new one

  Result<ClaimRecord> read = this->store_->Read("web1", 1);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, first->record);
}

TYPED_TEST(TestAndSetContract, VmsAndEpochsAreIndependent) {
  EXPECT_TRUE(this->MustClaim("web1", 1, "hostA").won());
  EXPECT_TRUE(this->MustClaim("web1", 2, "hostB").won());
  EXPECT_TRUE(this->MustClaim("db1", 1, "hostB").won());
  EXPECT_FALSE(this->MustClaim("db1", 1, "hostA").won());
}

TYPED_TEST(TestAndSetContract, AStaleEpochNeverWinsOnceALaterOneExists) {
  EXPECT_TRUE(this->MustClaim("web1", 3, "hostA").won());
  EXPECT_TRUE(this->MustClaim("web1", 4, "hostB").won());
  // hostA comes back from a crash and retries its old claim: it must not go live beside hostB.
  ClaimOutcome retry = this->MustClaim("web1", 3, "hostA");
  EXPECT_EQ(retry.outcome, Outcome::kLost);
  EXPECT_EQ(retry.record.epoch, 4u);
  EXPECT_EQ(retry.record.winner, "hostB");
  // A never-claimed old epoch loses to the later one too.
  ClaimOutcome old = this->MustClaim("web1", 2, "hostC");
  EXPECT_EQ(old.outcome, Outcome::kLost);
  EXPECT_EQ(old.record.epoch, 4u);
}

TYPED_TEST(TestAndSetContract, LatestEpoch) {
  Result<uint64_t> none = this->store_->LatestEpoch("web1");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(*none, 0u);
  for (uint64_t e : {1, 2, 5}) this->MustClaim("web1", e, "hostA");
  this->MustClaim("db1", 9, "hostA");
  EXPECT_EQ(*this->store_->LatestEpoch("web1"), 5u);
  EXPECT_EQ(*this->store_->LatestEpoch("db1"), 9u);
}

TYPED_TEST(TestAndSetContract, PruneRemovesOldEpochsKeepsTheLatestAndOldEpochsStayLost) {
  for (uint64_t e = 1; e <= 5; ++e) this->MustClaim("web1", e, e % 2 ? "hostA" : "hostB");
  this->MustClaim("db1", 1, "hostA");
  ASSERT_TRUE(this->store_->Prune("web1", 4).ok());
  for (uint64_t e = 1; e <= 3; ++e) {
    EXPECT_EQ(this->store_->Read("web1", e).status().code(), StatusCode::kNotFound) << e;
  }
  EXPECT_TRUE(this->store_->Read("web1", 4).ok());
  EXPECT_TRUE(this->store_->Read("db1", 1).ok());  // other vms untouched

  // Pruning past the end keeps the latest record: it is what beats stale claims.
  ASSERT_TRUE(this->store_->Prune("web1", 100).ok());
  EXPECT_EQ(this->store_->Read("web1", 4).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(this->store_->Read("web1", 5).ok());
  EXPECT_EQ(*this->store_->LatestEpoch("web1"), 5u);

  // Epoch 2 is gone from storage, yet a node with a stale view cannot win it.
  ClaimOutcome stale = this->MustClaim("web1", 2, "hostC");
  EXPECT_EQ(stale.outcome, Outcome::kLost);
  EXPECT_EQ(stale.record.epoch, 5u);
  EXPECT_EQ(stale.record.winner, "hostA");
  EXPECT_EQ(this->store_->Read("web1", 2).status().code(), StatusCode::kNotFound);

  EXPECT_TRUE(this->store_->Prune("nosuchvm", 10).ok());
}

TYPED_TEST(TestAndSetContract, ReadOfAnUnclaimedEpochIsNotFound) {
  EXPECT_EQ(this->store_->Read("web1", 1).status().code(), StatusCode::kNotFound);
  this->MustClaim("web1", 1, "hostA");
  EXPECT_EQ(this->store_->Read("web1", 2).status().code(), StatusCode::kNotFound);
}

TYPED_TEST(TestAndSetContract, BadRequestsAreInvalidArgument) {
  const ClaimRequest bad[] = {
      {"", 1, "hostA", ""},     {"../etc", 1, "hostA", ""}, {"a/b", 1, "hostA", ""},
      {"web1", 0, "hostA", ""}, {"web1", 1, "", ""},        {"web1", 1, "host\nA", ""},
  };
  for (const ClaimRequest& r : bad) {
    EXPECT_EQ(this->store_->Claim(r).status().code(), StatusCode::kInvalidArgument)
        << r.vm << " " << r.epoch << " " << r.node;
  }
  EXPECT_EQ(*this->store_->LatestEpoch("web1"), 0u);
}

}  // namespace
}  // namespace ft::shared_disk
