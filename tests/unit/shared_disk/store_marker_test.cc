#include "ft/shared_disk/store_marker.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ft/crc32.h"

namespace ft::shared_disk {
namespace {

constexpr std::string_view kId = "5f0c1a2b3c4d5e6f708192a3b4c5d6e7";

std::string WithCrc(const std::string& content) {
  return content + fmt::format("crc32 {:08x}\n", Crc32(content));
}

// The example in docs/formats/claim-record.md.
TEST(StoreMarkerTest, EncodesTheDocumentedTextAndDecodesItBack) {
  const std::string bytes = EncodeStoreMarker(kId);
  EXPECT_EQ(bytes, WithCrc("ftd-claim-store 2\nid 5f0c1a2b3c4d5e6f708192a3b4c5d6e7\n"));
  EXPECT_EQ(bytes.substr(bytes.size() - 15), "crc32 4addec70\n");
  Result<StoreMarker> decoded = DecodeStoreMarker(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, (StoreMarker{2, std::string(kId)}));
}

// What ftd wrote before stores had an id: still a store, with no id.
TEST(StoreMarkerTest, AVersionOneMarkerHasNoId) {
  Result<StoreMarker> decoded = DecodeStoreMarker("ftd-claim-store 1\n");
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, (StoreMarker{1, ""}));
}

TEST(StoreMarkerTest, EveryFlippedByteIsDataLoss) {
  for (const std::string& good : {EncodeStoreMarker(kId), std::string(kStoreMarkerV1)}) {
    for (size_t i = 0; i < good.size(); ++i) {
      for (unsigned char mask : {0x01, 0x20, 0xff}) {
        std::string bad = good;
        bad[i] = static_cast<char>(bad[i] ^ mask);
        Result<StoreMarker> r = DecodeStoreMarker(bad);
        ASSERT_FALSE(r.ok()) << "byte " << i << " ^ " << int(mask) << " went unnoticed";
        EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
      }
    }
  }
}

TEST(StoreMarkerTest, EveryTruncationAndTrailingBytesAreDataLoss) {
  for (const std::string& good : {EncodeStoreMarker(kId), std::string(kStoreMarkerV1)}) {
    for (size_t n = 0; n < good.size(); ++n) {
      Result<StoreMarker> r = DecodeStoreMarker(std::string_view(good).substr(0, n));
      ASSERT_FALSE(r.ok()) << n << " bytes decoded";
      EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
    }
    EXPECT_EQ(DecodeStoreMarker(good + "x").status().code(), StatusCode::kDataLoss);
  }
  EXPECT_NE(DecodeStoreMarker("").status().message().find("truncated"), std::string::npos);
  EXPECT_EQ(DecodeStoreMarker(std::string(kMaxStoreMarkerBytes + 1, 'a')).status().code(),
            StatusCode::kDataLoss);
}

TEST(StoreMarkerTest, CorruptionIsNamedInTheMessage) {
  std::string bad = EncodeStoreMarker(kId);
  bad[20] = 'x';
  EXPECT_NE(DecodeStoreMarker(bad).status().message().find("CRC mismatch"), std::string::npos);
}

TEST(StoreMarkerTest, ANewerVersionWithAGoodCrcIsRefusedNotMisread) {
  Result<StoreMarker> r = DecodeStoreMarker(WithCrc("ftd-claim-store 3\nid x\nsite y\n"));
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(),
            "claim store marker format version 3; this ftd reads versions 1 and 2 only");
}

TEST(StoreMarkerTest, WellSealedButMalformedContentIsDataLoss) {
  const std::string id(kId);
  for (const std::string& content : {
           std::string("not a marker\n"),
           std::string("ftd-claim-store 1\n"),  // version 1 is never sealed
           std::string("ftd-claim-store 0\nid ") + id + "\n",
           std::string("ftd-claim-store 02\nid ") + id + "\n",
           std::string("ftd-claim-store 2\n"),
           std::string("ftd-claim-store 2\nid ") + id.substr(1) + "\n",
           std::string("ftd-claim-store 2\nid ") + id + "0\n",
           std::string("ftd-claim-store 2\nid 5F0C1A2B3C4D5E6F708192A3B4C5D6E7\n"),
           std::string("ftd-claim-store 2\nid  ") + id.substr(1) + "\n",
           std::string("ftd-claim-store 2\nid ") + id + "\nextra 1\n",
           std::string("ftd-claim-store 2\nstore ") + id + "\n",
       }) {
    EXPECT_EQ(DecodeStoreMarker(WithCrc(content)).status().code(), StatusCode::kDataLoss)
        << content;
  }
}

TEST(StoreMarkerTest, StoreIds) {
  EXPECT_TRUE(IsValidStoreId(kId));
  EXPECT_FALSE(IsValidStoreId(""));
  EXPECT_FALSE(IsValidStoreId(kId.substr(1)));
  EXPECT_FALSE(IsValidStoreId(std::string(kId) + "0"));
  EXPECT_FALSE(IsValidStoreId("5F0C1A2B3C4D5E6F708192A3B4C5D6E7"));
  EXPECT_FALSE(IsValidStoreId("5f0c1a2b3c4d5e6f708192a3b4c5d6eg"));
}

}  // namespace
}  // namespace ft::shared_disk
