#include "ft/shared_disk/claim_record.h"

#include <cstdint>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ft/crc32.h"
#include "ft/domain/vm_spec.h"
#include "ft/names.h"

namespace ft::shared_disk {
namespace {

ClaimRecord Sample() {
  return ClaimRecord{
      kClaimRecordVersion, "web1", 7, "hostB", "primary host lost: no heartbeat for 1000 ms",
      1718000000123};
}

// The example in docs/formats/claim-record.md.
constexpr std::string_view kGolden =
    "ftd-claim-record 1\n"
    "vm web1\n"
    "epoch 7\n"
    "winner hostB\n"
    "reason primary host lost: no heartbeat for 1000 ms\n"
    "unix_time_ms 1718000000123\n"
    "crc32 ";

TEST(ClaimRecordTest, EncodesTheDocumentedTextAndDecodesItBack) {
  std::string bytes = EncodeClaimRecord(Sample());
  ASSERT_EQ(bytes.substr(0, kGolden.size()), kGolden);
  std::string content = bytes.substr(0, bytes.find("crc32 "));
  EXPECT_EQ(bytes.substr(content.size()), fmt::format("crc32 {:08x}\n", Crc32(content)));
  Result<ClaimRecord> decoded = DecodeClaimRecord(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, Sample());
}

TEST(ClaimRecordTest, EveryFlippedByteIsDataLoss) {
  const std::string good = EncodeClaimRecord(Sample());
  for (size_t i = 0; i < good.size(); ++i) {
    for (unsigned char mask : {0x01, 0x20, 0xff}) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      Result<ClaimRecord> r = DecodeClaimRecord(bad);
      ASSERT_FALSE(r.ok()) << "byte " << i << " ^ " << int(mask) << " went unnoticed";
      EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
    }
  }
}

TEST(ClaimRecordTest, EveryTruncationIsDataLoss) {
  const std::string good = EncodeClaimRecord(Sample());
  for (size_t n = 0; n < good.size(); ++n) {
    Result<ClaimRecord> r = DecodeClaimRecord(std::string_view(good).substr(0, n));
    ASSERT_FALSE(r.ok()) << n << " bytes decoded";
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
  }
  EXPECT_NE(DecodeClaimRecord("").status().message().find("truncated"), std::string::npos);
}

TEST(ClaimRecordTest, TrailingBytesOrAnOversizedFileAreDataLoss) {
  EXPECT_EQ(DecodeClaimRecord(EncodeClaimRecord(Sample()) + "x").status().code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(DecodeClaimRecord(std::string(kMaxClaimRecordBytes + 1, 'a')).status().code(),
            StatusCode::kDataLoss);
}

std::string WithCrc(const std::string& content) {
  return content + fmt::format("crc32 {:08x}\n", Crc32(content));
}

TEST(ClaimRecordTest, ANewerVersionWithAGoodCrcIsRefusedNotMisread) {
  Result<ClaimRecord> r = DecodeClaimRecord(WithCrc("ftd-claim-record 2\nvm web1\n"));
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("version 2"), std::string::npos) << r.status().ToString();
}

TEST(ClaimRecordTest, WellSealedButMalformedContentIsDataLoss) {
  const char* bad[] = {
      "not a record\n",
      "ftd-claim-record 1\nvm web1\nepoch 7\nwinner hostB\nreason x\n",  // short
      "ftd-claim-record 1\nvm web1\nepoch 0\nwinner hostB\nreason x\nunix_time_ms 1\n",
      "ftd-claim-record 1\nvm web1\nepoch 07\nwinner hostB\nreason x\nunix_time_ms 1\n",
      "ftd-claim-record 1\nvm ../x\nepoch 7\nwinner hostB\nreason x\nunix_time_ms 1\n",
      "ftd-claim-record 1\nvm web1\nepoch 7\nwinner \nreason x\nunix_time_ms 1\n",
      "ftd-claim-record 1\nvm web1\nwinner hostB\nepoch 7\nreason x\nunix_time_ms 1\n",
      "ftd-claim-record 1\nvm web1\nepoch 7\nwinner hostB\nreason x\nunix_time_ms 1x\n",
      // Not a form Encode writes (fuzz/corpus/claim_record/negative-zero-time).
      "ftd-claim-record 1\nvm web1\nepoch 7\nwinner hostB\nreason x\nunix_time_ms -0\n",
      "ftd-claim-record 1\nvm web1\nepoch 7\nwinner hostB\nreason x\nunix_time_ms -01\n",
      "ftd-claim-record 1\nvm web1\nepoch 7\nwinner hostB\nreason x\n"
      "unix_time_ms -9223372036854775809\n",
  };
  for (const char* content : bad) {
    EXPECT_EQ(DecodeClaimRecord(WithCrc(content)).status().code(), StatusCode::kDataLoss)
        << content;
  }
  // An empty reason and a negative time are fine.
  Result<ClaimRecord> r = DecodeClaimRecord(
      WithCrc("ftd-claim-record 1\nvm web1\nepoch 7\nwinner hostB\nreason \nunix_time_ms -5\n"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->reason, "");
  EXPECT_EQ(r->unix_time_ms, -5);
}

// Every time Encode writes decodes to itself, the extremes included.
TEST(ClaimRecordTest, EveryTimeRoundTrips) {
  for (int64_t t : {int64_t{0}, int64_t{-1}, INT64_MAX, INT64_MIN}) {
    ClaimRecord r = Sample();
    r.unix_time_ms = t;
    Result<ClaimRecord> back = DecodeClaimRecord(EncodeClaimRecord(r));
    ASSERT_TRUE(back.ok()) << t << ": " << back.status().ToString();
    EXPECT_EQ(*back, r);
  }
}

TEST(ClaimRecordTest, ReasonsAreMadeSafeNotRefused) {
  EXPECT_EQ(SanitizeReason("lost\nbackup\r\t!"), "lost backup  !");
  EXPECT_EQ(SanitizeReason(std::string(5000, 'r')).size(), kMaxReasonBytes);
  ClaimRecord rec = Sample();
  rec.reason = "two\nlines";
  Result<ClaimRecord> r = DecodeClaimRecord(EncodeClaimRecord(rec));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->reason, "two lines");
}

TEST(ClaimRecordTest, NodeNames) {
  EXPECT_TRUE(IsValidNodeName("hostA"));
  EXPECT_TRUE(IsValidNodeName("host a.example/1"));
  EXPECT_FALSE(IsValidNodeName(""));
  EXPECT_FALSE(IsValidNodeName("host\nA"));
  EXPECT_FALSE(IsValidNodeName(std::string("a\0b", 3)));
  EXPECT_FALSE(IsValidNodeName(std::string(kMaxNodeNameBytes + 1, 'h')));
}

TEST(ClaimRecordTest, ARecordForAnInvalidVmNameIsDataLoss) {
  // The rule itself is ft::IsValidName (tests/unit/common/names_test.cc).
  ClaimRecord r{kClaimRecordVersion, "../x", 3, "hostA", "test", 1};
  Result<ClaimRecord> decoded = DecodeClaimRecord(EncodeClaimRecord(r));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), StatusCode::kDataLoss);
}

TEST(ClaimRecordTest, FileNames) {
  EXPECT_EQ(ClaimFileName(7), "epoch-00000000000000000007.claim");
  EXPECT_EQ(EpochOfClaimFileName(ClaimFileName(7)), 7u);
  EXPECT_EQ(EpochOfClaimFileName(ClaimFileName(UINT64_MAX)), UINT64_MAX);
  EXPECT_EQ(EpochOfClaimFileName("epoch-99999999999999999999.claim"), 0u);  // overflow
  EXPECT_EQ(EpochOfClaimFileName("epoch-0000000000000000000x.claim"), 0u);
  EXPECT_EQ(EpochOfClaimFileName("epoch-7.claim"), 0u);
  EXPECT_EQ(EpochOfClaimFileName(".tmp-00000000000000000007-abc"), 0u);
}

}  // namespace
}  // namespace ft::shared_disk
