// Waits that arm themselves again (a role's tick, the SIGCHLD watch): once stopped, they must
// leave the event loop nothing to wait for. ftd once stayed up after SIGTERM, its last VM
// stopped (DiskTest, 1 stop in ~40): the primary's 20 ms tick had expired in the same wake-up
// as the QEMU exit poll whose handler stopped it; its queued completion ran anyway, without
// an error, and armed the tick again, so io_context::run() never returned.
#include "repeating_wait.h"

#include <signal.h>

#include <asio.hpp>
#include <chrono>
#include <memory>
#include <thread>

#include <gtest/gtest.h>

namespace ft::daemon {
namespace {

using namespace std::chrono_literals;

// Runs what is ready, for at most `bound`; true if the loop then ran out of work.
bool RunsOutOfWork(asio::io_context& io, std::chrono::milliseconds bound = 2s) {
  io.run_for(bound);
  return io.stopped();
}

TEST(RepeatingTimerTest, TicksEveryPeriodUntilStop) {
  asio::io_context io;
  int ticks = 0;
  RepeatingTimer timer(io, 5ms, [&] {
    if (++ticks == 3) timer.Stop();
  });
  timer.Start();
  EXPECT_TRUE(RunsOutOfWork(io));
  EXPECT_EQ(ticks, 3);
}

// Two timers that expired before the loop woke are completed in one go. Whichever ticks first
// stops the other, whose completion is then already queued: it must neither tick nor arm.
TEST(RepeatingTimerTest, AStopWhileTheTickIsQueuedLeavesNoWork) {
  asio::io_context io;
  int a_ticks = 0, b_ticks = 0;
  std::unique_ptr<RepeatingTimer> a, b;
  a = std::make_unique<RepeatingTimer>(io, 1ms, [&] {
    ++a_ticks;
    a->Stop();
    b->Stop();
  });
  b = std::make_unique<RepeatingTimer>(io, 1ms, [&] {
    ++b_ticks;
    a->Stop();
    b->Stop();
  });
  a->Start();
  b->Start();
  std::this_thread::sleep_for(20ms);  // both due before the loop looks
  EXPECT_TRUE(RunsOutOfWork(io)) << "a stopped timer armed itself again: ftd would not exit";
  EXPECT_EQ(a_ticks + b_ticks, 1) << "a stopped timer ticked";
}

TEST(RepeatingTimerTest, DestroyingItLeavesNoWork) {
  asio::io_context io;
  int ticks = 0;
  {
    RepeatingTimer timer(io, 1ms, [&] { ++ticks; });
    timer.Start();
  }
  EXPECT_TRUE(RunsOutOfWork(io));
  EXPECT_EQ(ticks, 0);
}

TEST(SignalWatchTest, EachSignalIsAnsweredUntilStop) {
  asio::io_context io;
  int seen = 0;
  SignalWatch watch(io, SIGUSR1, [&] {
    if (++seen == 2) watch.Stop();
  });
  watch.Start();
  raise(SIGUSR1);
  while (seen == 0 && io.run_one_for(2s)) {
  }
  EXPECT_EQ(seen, 1);
  raise(SIGUSR1);
  EXPECT_TRUE(RunsOutOfWork(io)) << "the watch stopped itself: nothing may be left pending";
  EXPECT_EQ(seen, 2);
}

// One signal completes every watch on it at once. Whichever answers first stops the other,
// whose completion is then already queued: it must neither answer nor wait again.
TEST(SignalWatchTest, AStopWhileTheSignalIsQueuedLeavesNoWork) {
  asio::io_context io;
  int a_seen = 0, b_seen = 0;
  std::unique_ptr<SignalWatch> a, b;
  a = std::make_unique<SignalWatch>(io, SIGUSR2, [&] {
    ++a_seen;
    a->Stop();
    b->Stop();
  });
  b = std::make_unique<SignalWatch>(io, SIGUSR2, [&] {
    ++b_seen;
    a->Stop();
    b->Stop();
  });
  a->Start();
  b->Start();
  raise(SIGUSR2);
  EXPECT_TRUE(RunsOutOfWork(io)) << "a stopped watch is still waiting: ftd would not exit";
  EXPECT_EQ(a_seen + b_seen, 1) << "a stopped watch answered a signal";
}

TEST(SignalWatchTest, ASignalBeforeStartIsAnsweredAtStart) {
  asio::io_context io;
  int seen = 0;
  SignalWatch watch(io, SIGUSR1, [&] {
    ++seen;
    watch.Stop();
  });
  raise(SIGUSR1);  // registered, not yet watched: kept for Start()
  watch.Start();
  EXPECT_TRUE(RunsOutOfWork(io));
  EXPECT_EQ(seen, 1);
}

}  // namespace
}  // namespace ft::daemon
