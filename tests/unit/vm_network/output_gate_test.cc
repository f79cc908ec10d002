#include "ft/net/output_gate.h"

#include <gtest/gtest.h>

namespace ft::net {
namespace {

using replay::RrEvent;
using std::chrono::milliseconds;

RrEvent Event(uint64_t offset, uint32_t size) {
  RrEvent e;
  e.kind = replay::rr::kInterrupt;
  e.offset = offset;
  e.size = size;
  return e;
}

struct GateFixture : ::testing::Test {
  std::vector<GatedFrame> out;
  Clock::time_point t0 = Clock::now();
  OutputGate gate{[this](GatedFrame&& f) { out.push_back(std::move(f)); }};
  std::vector<std::string> Released() const {
    std::vector<std::string> v;
    for (const auto& f : out) v.push_back(f.bytes);
    return v;
  }
};

TEST_F(GateFixture, AFrameWaitsForTheAckOfTheFirstEventAfterIt) {
  ASSERT_TRUE(gate.Submit("f1", 100, t0));
  gate.OnLogEvents({Event(90, 10)});  // ended at P: started before the send
  gate.OnAcked(100, t0);              // the log up to the frame is not enough
  EXPECT_TRUE(out.empty());
  gate.OnLogEvents({Event(100, 20)});  // starts at P: the first event after the send
  gate.OnAcked(119, t0);
  EXPECT_TRUE(out.empty());
  gate.OnAcked(120, t0 + milliseconds(3));
  ASSERT_EQ(Released(), std::vector<std::string>{"f1"});
  EXPECT_EQ(out[0].covering_end, 120u);
  EXPECT_EQ(out[0].acked_at_release, 120u);
  EXPECT_FALSE(out[0].released_open);
  EXPECT_EQ(gate.stats().max_delay, milliseconds(3));
}

TEST_F(GateFixture, AnEventThatStartedBeforeTheFrameDoesNotCoverIt) {
  // P falls inside an event that was still being written when the frame was read.
  ASSERT_TRUE(gate.Submit("f1", 105, t0));
  gate.OnLogEvents({Event(100, 10), Event(110, 5)});
  gate.OnAcked(110, t0);
  EXPECT_TRUE(out.empty());
  gate.OnAcked(115, t0);
  EXPECT_EQ(Released(), std::vector<std::string>{"f1"});
}

TEST_F(GateFixture, FramesLeaveInTheOrderTheGuestSentThem) {
  ASSERT_TRUE(gate.Submit("a", 10, t0));
  ASSERT_TRUE(gate.Submit("b", 10, t0));
  ASSERT_TRUE(gate.Submit("c", 30, t0));
  gate.OnLogEvents({Event(10, 10), Event(20, 10), Event(30, 10), Event(40, 10)});
  gate.OnAcked(20, t0);
  EXPECT_EQ(Released(), (std::vector<std::string>{"a", "b"}));
  gate.OnAcked(39, t0);
  EXPECT_EQ(out.size(), 2u);
  gate.OnAcked(40, t0);
  EXPECT_EQ(Released(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(out[2].seq, 3u);
  EXPECT_EQ(gate.stats().held_frames, 0u);
  EXPECT_EQ(gate.stats().held_bytes, 0u);
}

TEST_F(GateFixture, AnAckAheadOfTheEventsReleasesOnceTheEventIsSeen) {
  ASSERT_TRUE(gate.Submit("a", 50, t0));
  gate.OnAcked(500, t0);
  EXPECT_TRUE(out.empty());  // nothing known covers it yet
  gate.OnLogEvents({Event(50, 8)});
  EXPECT_TRUE(out.empty());  // releases happen on acks, which come after events
  gate.OnAcked(500, t0);
  EXPECT_EQ(Released(), std::vector<std::string>{"a"});
}

TEST_F(GateFixture, OpeningReleasesEverythingHeldInOrderAndPassesTheRest) {
  ASSERT_TRUE(gate.Submit("a", 10, t0));
  ASSERT_TRUE(gate.Submit("b", 20, t0));
  gate.Open(t0);
  EXPECT_EQ(Released(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(out[0].released_open);
  ASSERT_TRUE(gate.Submit("c", 30, t0));
  EXPECT_EQ(Released(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(gate.stats().released_open, 3u);
  EXPECT_EQ(gate.stats().released_on_open, 2u);
  EXPECT_TRUE(gate.stats().recent_delays_us.empty());  // no gated release happened
  gate.Close();
  ASSERT_TRUE(gate.Submit("d", 40, t0));
  EXPECT_EQ(out.size(), 3u);  // held again
}

TEST(OutputGateTest, AFullGateDropsAndCounts) {
  std::vector<GatedFrame> out;
  OutputGate gate([&](GatedFrame&& f) { out.push_back(std::move(f)); }, GateLimits{2, 1 << 20});
  auto t = Clock::now();
  EXPECT_TRUE(gate.Submit("a", 1, t));
  EXPECT_TRUE(gate.Submit("b", 1, t));
  EXPECT_FALSE(gate.Submit("c", 1, t));
  EXPECT_EQ(gate.stats().dropped_full, 1u);
  gate.OnLogEvents({Event(1, 4)});
  gate.OnAcked(5, t);
  EXPECT_EQ(out.size(), 2u);
  EXPECT_TRUE(gate.Submit("d", 6, t));  // room again
}

TEST(OutputGateTest, DelayPercentiles) {
  OutputGate gate([](GatedFrame&&) {});
  auto t = Clock::now();
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(gate.Submit("x", uint64_t(i) * 10, t));
    gate.OnLogEvents({Event(uint64_t(i) * 10, 10)});
    gate.OnAcked(uint64_t(i) * 10 + 10, t + std::chrono::microseconds(i + 1));
  }
  EXPECT_EQ(gate.stats().released, 100u);
  EXPECT_NEAR(gate.stats().DelayPercentileUs(50), 50, 1.5);
  EXPECT_NEAR(gate.stats().DelayPercentileUs(99), 99, 1.5);
}

}  // namespace
}  // namespace ft::net
