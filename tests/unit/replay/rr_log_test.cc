#include "ft/replay/rr_log.h"

#include <gtest/gtest.h>

#include "rr_bytes.h"

namespace ft::replay {
namespace {

using namespace ::ft::replay::testing;  // U32, U64, Z, K

TEST(RrLogParserTest, ParsesEveryKindAndSumsInstructions) {
  std::string log;
  for (const auto& e : EveryKind()) log += e;
  RrLogParser p;
  std::vector<RrEvent> events;
  ASSERT_TRUE(p.Feed(log, &events).ok());
  ASSERT_EQ(events.size(), EveryKind().size());
  EXPECT_TRUE(p.ended());
  EXPECT_EQ(p.icount(), 1234u);
  EXPECT_EQ(p.consumed(), log.size());
  uint64_t offset = 0;
  auto kinds = EveryKind();
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].offset, offset) << i;
    EXPECT_EQ(events[i].size, kinds[i].size()) << RrEventName(events[i].kind);
    offset += events[i].size;
  }
  EXPECT_EQ(events[0].icount_after, 1000u);
  EXPECT_EQ(events[1].icount_after, 1000u);
  EXPECT_EQ(events.back().icount_after, 1234u);
}

TEST(RrLogParserTest, AnySplitOfTheStreamGivesTheSameEvents) {
  std::string log;
  for (const auto& e : EveryKind()) log += e;
  RrLogParser whole;
  std::vector<RrEvent> expected;
  ASSERT_TRUE(whole.Feed(log, &expected).ok());
  for (size_t chunk = 1; chunk <= 7; ++chunk) {
    RrLogParser p;
    std::vector<RrEvent> got;
    for (size_t at = 0; at < log.size(); at += chunk) {
      ASSERT_TRUE(p.Feed(std::string_view(log).substr(at, chunk), &got).ok());
      // Never an event before all its bytes arrived.
      EXPECT_LE(p.consumed(), std::min(log.size(), at + chunk));
    }
    ASSERT_EQ(got.size(), expected.size()) << "chunk " << chunk;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].offset, expected[i].offset);
      EXPECT_EQ(got[i].icount_after, expected[i].icount_after);
    }
  }
}

TEST(RrLogParserTest, IncompleteEventIsHeldBack) {
  RrLogParser p;
  std::vector<RrEvent> events;
  std::string net = K(rr::kAsyncNet) + Z() + U32(0) + U32(6) + "frame!";
  ASSERT_TRUE(p.Feed(net.substr(0, net.size() - 1), &events).ok());
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(p.consumed(), 0u);
  EXPECT_EQ(p.received(), net.size() - 1);
  ASSERT_TRUE(p.Feed(net.substr(net.size() - 1), &events).ok());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, rr::kAsyncNet);
}

TEST(RrLogParserTest, UnknownKindIsDataLossNamingTheOffset) {
  RrLogParser p;
  std::vector<RrEvent> events;
  std::string log = EncodeInstructionEvent(10) + K(208);
  auto s = p.Feed(log, &events);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("offset 5: unknown event kind 208"), std::string::npos) << s.message();
  EXPECT_EQ(events.size(), 1u);
  EXPECT_FALSE(p.Feed(EncodeInstructionEvent(1), &events).ok());  // stays failed
}

TEST(RrLogParserTest, OversizedArrayAndTrailingBytesAreRejected) {
  RrLogParser p;
  auto s = p.Feed(K(rr::kAsyncNet) + Z() + U32(0) + U32(0x7fffffff), nullptr);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("async-net event has a 2147483647-byte array"), std::string::npos);

  RrLogParser q;
  ASSERT_TRUE(q.Feed(K(rr::kEnd), nullptr).ok());
  EXPECT_FALSE(q.Feed(EncodeInstructionEvent(1), nullptr).ok());

  // In the same piece as the end event, too: nothing may follow it.
  RrLogParser r;
  std::vector<RrEvent> events;
  EXPECT_FALSE(r.Feed(EncodeInstructionEvent(3) + K(rr::kEnd) + K(rr::kCheckpoint), &events).ok());
  EXPECT_EQ(events.size(), 2u);
  EXPECT_EQ(r.icount(), 3u);
}

TEST(RrLogParserTest, InstructionEventEncoding) {
  EXPECT_EQ(EncodeInstructionEvent(0x7fffffff), std::string("\x00\x7f\xff\xff\xff", 5));
}

}  // namespace
}  // namespace ft::replay
