#include "ft/net/stream_framing.h"

#include <gtest/gtest.h>

#include <random>

namespace ft::net {
namespace {

std::string Frame(size_t size, char fill) { return std::string(size, fill); }

TEST(StreamFramingTest, FramesSurviveAnySplit) {
  std::vector<std::string> sent = {Frame(60, 'a'), Frame(1514, 'b'), Frame(14, 'c'),
                                   Frame(9000, 'd')};
  std::string stream;
  for (const auto& f : sent) stream += EncodeStreamFrame(f);
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    StreamFrameParser parser;
    std::vector<std::string> got;
    size_t at = 0;
    while (at < stream.size()) {
      size_t n = std::min<size_t>(stream.size() - at, 1 + rng() % 700);
      parser.Feed(std::string_view(stream).substr(at, n), &got);
      at += n;
    }
    ASSERT_EQ(got, sent) << "round " << round;
    EXPECT_EQ(parser.pending(), 0u);
    EXPECT_EQ(parser.counters().frames, sent.size());
  }
}

TEST(StreamFramingTest, RuntsAreCountedAndTheStreamStaysInStep) {
  StreamFrameParser parser;
  std::vector<std::string> got;
  parser.Feed(
      EncodeStreamFrame("") + EncodeStreamFrame(Frame(13, 'x')) + EncodeStreamFrame(Frame(64, 'y')),
      &got);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], Frame(64, 'y'));
  EXPECT_EQ(parser.counters().runts, 2u);
}

TEST(StreamFramingTest, OversizedFramesAreSkippedAcrossReads) {
  StreamFrameParser parser;
  std::vector<std::string> got;
  std::string huge = EncodeStreamFrame(Frame(kMaxFrameSize + 100, 'h'));
  std::string stream = huge + EncodeStreamFrame(Frame(100, 'n'));
  for (size_t at = 0; at < stream.size(); at += 4096) {
    parser.Feed(std::string_view(stream).substr(at, 4096), &got);
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], Frame(100, 'n'));
  EXPECT_EQ(parser.counters().oversized, 1u);
  EXPECT_EQ(parser.counters().bytes_skipped, kMaxFrameSize + 100);
}

TEST(StreamFramingTest, EncodeWritesABigEndianLength) {
  std::string e = EncodeStreamFrame(Frame(0x0102, 'z'));
  ASSERT_EQ(e.size(), 0x0102u + 4);
  EXPECT_EQ(e.substr(0, 4), std::string("\0\0\x01\x02", 4));
}

}  // namespace
}  // namespace ft::net
