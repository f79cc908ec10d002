// The event-loop watchdog's arithmetic: a tick that runs later than the threshold is a stall.
#include "loop_watchdog.h"

#include <gtest/gtest.h>

namespace ft::daemon {
namespace {

using namespace std::chrono_literals;
using Clock = StallMeter::Clock;

TEST(StallMeterTest, OnTimeAndSlightlyLateTicksAreNoStall) {
  StallMeter meter(100ms);
  Clock::time_point due{10s};
  EXPECT_EQ(meter.Tick(due, due), std::nullopt);
  EXPECT_EQ(meter.Tick(due, due - 1ms), std::nullopt);    // timers may fire a hair early
  EXPECT_EQ(meter.Tick(due, due + 100ms), std::nullopt);  // at the threshold: not yet
  EXPECT_EQ(meter.stalls(), 0u);
  EXPECT_EQ(meter.worst(), 100ms);
}

TEST(StallMeterTest, ALateTickIsAStallOfItsLateness) {
  StallMeter meter(100ms);
  Clock::time_point due{10s};
  EXPECT_EQ(meter.Tick(due, due + 1250ms), 1250ms);
  EXPECT_EQ(meter.Tick(due, due + 101ms), 101ms);
  EXPECT_EQ(meter.Tick(due, due + 5ms), std::nullopt);
  EXPECT_EQ(meter.stalls(), 2u);
  EXPECT_EQ(meter.worst(), 1250ms);
}

TEST(StallMeterTest, SubMillisecondLatenessRoundsDown) {
  StallMeter meter(0ms);
  Clock::time_point due{10s};
  EXPECT_EQ(meter.Tick(due, due + 900us), std::nullopt);
  EXPECT_EQ(meter.Tick(due, due + 1500us), 1ms);
}

}  // namespace
}  // namespace ft::daemon
