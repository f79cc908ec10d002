// The log a primary holds for its backup: acks drop what the backup has, a connecting backup
// is sent the rest from the first byte not acked, and nothing is lost or sent twice.
#include "unacked_log.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace ft::daemon {
namespace {

std::vector<std::pair<uint64_t, std::string>> Runs(const UnackedLog& log) {
  std::vector<std::pair<uint64_t, std::string>> runs;
  log.ForEachRun([&](uint64_t offset, std::string_view b) { runs.emplace_back(offset, b); });
  return runs;
}

std::string Held(const UnackedLog& log) {
  std::string all;
  uint64_t next = log.base();
  log.ForEachRun([&](uint64_t offset, std::string_view b) {
    EXPECT_EQ(offset, next) << "runs are contiguous";
    next += b.size();
    all += b;
  });
  EXPECT_EQ(next, log.end());
  return all;
}

TEST(UnackedLogTest, HoldsWhatWasAppendedFromOffsetZero) {
  UnackedLog log;
  EXPECT_TRUE(log.empty());
  log.Append("abc");
  log.Append("");
  log.Append("defg");
  EXPECT_EQ(log.base(), 0u);
  EXPECT_EQ(log.end(), 7u);
  EXPECT_EQ(log.size(), 7u);
  EXPECT_EQ(Held(log), "abcdefg");
  EXPECT_EQ(Runs(log).size(), 2u) << "an empty append adds no run";
}

TEST(UnackedLogTest, AnAckDropsWhatTheBackupHasEvenInsideAChunk) {
  UnackedLog log;
  log.Append("abc");
  log.Append("defg");
  EXPECT_EQ(log.Ack(2), 2u);
  EXPECT_EQ(log.base(), 2u);
  EXPECT_EQ(Held(log), "cdefg");
  EXPECT_EQ(Runs(log).front(), (std::pair<uint64_t, std::string>{2, "c"}));
  EXPECT_EQ(log.Ack(5), 3u);
  EXPECT_EQ(Held(log), "fg");
  EXPECT_EQ(Runs(log).front(), (std::pair<uint64_t, std::string>{5, "fg"}));
  log.Append("hi");
  EXPECT_EQ(log.end(), 9u);
  EXPECT_EQ(Held(log), "fghi");
}

TEST(UnackedLogTest, AnOldOrRepeatedAckChangesNothing) {
  UnackedLog log;
  log.Append("abcdef");
  log.Ack(4);
  EXPECT_EQ(log.Ack(4), 0u);
  EXPECT_EQ(log.Ack(1), 0u);
  EXPECT_EQ(log.base(), 4u);
  EXPECT_EQ(Held(log), "ef");
}

TEST(UnackedLogTest, AnAckPastTheEndDropsAllButNeverMovesTheBasePastIt) {
  UnackedLog log;
  log.Append("abc");
  EXPECT_EQ(log.Ack(10), 3u);
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(log.base(), 3u);
  log.Append("d");
  EXPECT_EQ(Runs(log), (std::vector<std::pair<uint64_t, std::string>>{{3, "d"}}));
}

TEST(UnackedLogTest, ClearDropsEverythingAndTheNextByteKeepsItsOffset) {
  UnackedLog log;
  log.Append("abc");
  log.Ack(1);
  log.Clear();
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(log.base(), 3u);
  EXPECT_EQ(log.end(), 3u);
  EXPECT_TRUE(Runs(log).empty());
}

TEST(UnackedLogTest, EveryAckOrderKeepsExactlyTheUnackedBytes) {
  // Appends of 1..7 bytes and acks landing anywhere, against a plain string as the model.
  UnackedLog log;
  std::string model;  // the whole log so far
  uint64_t acked = 0;
  uint32_t seed = 12345;
  auto next = [&seed] { return seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff; };
  for (int step = 0; step < 2000; ++step) {
    if (next() % 3 != 0) {
      std::string bytes(1 + next() % 7, static_cast<char>('a' + step % 26));
      log.Append(bytes);
      model += bytes;
    } else {
      uint64_t ack = next() % (model.size() + 3);
      log.Ack(ack);
      acked = std::max<uint64_t>(acked, std::min<uint64_t>(ack, model.size()));
    }
    ASSERT_EQ(log.base(), acked);
    ASSERT_EQ(log.end(), model.size());
  }
  EXPECT_EQ(Held(log), model.substr(acked));
}

}  // namespace
}  // namespace ft::daemon
