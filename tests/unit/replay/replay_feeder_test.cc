// The feeder's contract with a replaying QEMU, checked through a real pipe: the version
// first, then exactly the received log's complete events, in order, however the log was
// split on the way -- never a partial event, never a lost or repeated byte -- and a corrupt
// log is refused, not fed.
#include "ft/replay/replay_feeder.h"

#include <fcntl.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <random>

#include <gtest/gtest.h>

#include "rr_bytes.h"

#include "ft/replay/rr_log.h"

namespace ft::replay {
namespace {

using namespace ::ft::replay::testing;  // U32, U64, Z, K

std::string SampleLog(int spans) {
  std::string log;
  for (int i = 0; i < spans; ++i) {
    log += EncodeInstructionEvent(1000 + static_cast<uint32_t>(i));
    log += K(rr::kClock) + U64(static_cast<uint64_t>(i) * 7919);
    log +=
        K(rr::kAsyncNet) + std::string(1, 0) + U32(0) + U32(6) + "frame" + std::to_string(i % 10);
    log += K(rr::kCheckpoint + 2);
  }
  return log;
}

struct Pipe {
  Pipe() {
    EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
  }
  ~Pipe() { close(fds[0]); }  // the write end belongs to the feeder
  std::string Drain() {
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
  int fds[2];
};

TEST(ReplayFeederTest, FeedsVersionThenExactlyTheCompleteEventsForAnySplit) {
  std::string log = SampleLog(50);
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    asio::io_context io;
    Pipe pipe;
    auto feeder = ReplayFeeder::Create(io, "t", pipe.fds[1], rr::kVersion);
    ASSERT_TRUE(feeder.ok());
    std::string fed;
    size_t at = 0;
    while (at < log.size()) {
      size_t n = std::min<size_t>(log.size() - at, 1 + rng() % 40);  // often mid-event
      ASSERT_TRUE((*feeder)->Append(std::string_view(log).substr(at, n)).ok());
      at += n;
      io.restart();
      io.poll();
      fed += pipe.Drain();
      // Never a partial event: what reached the pipe (after the version) always parses whole.
      ASSERT_GE(fed.size(), 4u);
      RrLogParser check;
      ASSERT_TRUE(check.Feed(std::string_view(fed).substr(4), nullptr).ok());
      ASSERT_EQ(check.consumed(), fed.size() - 4) << "a partial event was fed at byte " << at;
    }
    io.restart();
    io.poll();
    fed += pipe.Drain();
    EXPECT_EQ(fed, U32(rr::kVersion) + log) << "round " << round;
    EXPECT_EQ((*feeder)->stats().fed_bytes, fed.size());
  }
}

TEST(ReplayFeederTest, TargetsTheBreakInsideTheLastCompleteInstructionSpan) {
  asio::io_context io;
  Pipe pipe;
  auto feeder = ReplayFeeder::Create(io, "t", pipe.fds[1], rr::kVersion);
  ASSERT_TRUE(feeder.ok());
  EXPECT_FALSE((*feeder)->ready_to_start());
  std::string span = EncodeInstructionEvent(500);
  ASSERT_TRUE((*feeder)->Append(span.substr(0, 3)).ok());
  EXPECT_FALSE((*feeder)->ready_to_start()) << "half an INSTRUCTION event is not a span";
  ASSERT_TRUE((*feeder)->Append(span.substr(3) + K(rr::kClock) + U64(1)).ok());
  EXPECT_TRUE((*feeder)->ready_to_start());
  EXPECT_EQ((*feeder)->stats().received_icount, 500u);
}

TEST(ReplayFeederTest, CorruptLogIsRefusedAndNothingOfItIsFed) {
  asio::io_context io;
  Pipe pipe;
  auto feeder = ReplayFeeder::Create(io, "t", pipe.fds[1], rr::kVersion);
  ASSERT_TRUE(feeder.ok());
  Status failure;
  (*feeder)->OnError([&](Status s) { failure = s; });
  std::string good = EncodeInstructionEvent(10);
  ASSERT_TRUE((*feeder)->Append(good).ok());
  io.restart();
  io.poll();
  Status s = (*feeder)->Append(K(208) + "garbage");
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
  EXPECT_EQ(failure.code(), StatusCode::kDataLoss);
  io.restart();
  io.poll();
  EXPECT_EQ(pipe.Drain(), U32(rr::kVersion) + good);
  EXPECT_FALSE((*feeder)->Append(good).ok()) << "a failed feeder stays failed";
}

}  // namespace
}  // namespace ft::replay
