// Virtual lockstep with real QEMU and two real ftd processes (separate state dirs, a shared
// channel key, loopback TCP): the backup replays the primary's log live and its console is
// byte-identical; the lag stays bounded with a delayed channel and a slowed backup; a dead
// or hung backup never stalls the primary longer than the heartbeat timeout.
#include <signal.h>

#include <algorithm>
#include <asio/io_context.hpp>
#include <atomic>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ft/replay/qmp_client.h"
#include "guest_client.h"
#include "lockstep_pair.h"

namespace ft::testing {
namespace {

using namespace std::chrono_literals;

// Guest monotonic time (ns) of the last timer/chaos line on a console, 0 if none.
int64_t LastGuestTimeNs(const std::string& console) {
  size_t at = console.rfind(" t=");
  if (at == std::string::npos) return 0;
  return std::strtoll(console.c_str() + at + 3, nullptr, 10);
}

// Lag samples while the pair runs, in ms of guest time (shift 5: 32 ns per instruction).
// The pair's lag is taken from both sides back to back: the primary's log end minus the
// backup's replay position, each fresh on its own host. The primary's own figure (what it
// paces on) uses the replay position from the last ack, which is up to an ack interval,
// a channel delay and a query interval old, so it overstates the lag; it is kept for the
// printout.
struct LagSampler {
  LagSampler(LockstepPair& pair, std::chrono::milliseconds every) {
    thread = std::thread([this, &pair, every] {
      while (!stop) {
        auto primary = pair.Status(pair.primary());
        auto backup = pair.Status(pair.backup());
        if (primary.ok() && backup.ok() &&
            primary->value("ft_state", "") == ProtoName(proto::VM_FT_STATE_PROTECTED)) {
          uint64_t end = U64(*primary, "log_icount");
          uint64_t replayed = U64(*backup, "replayed_icount");
          double lag = end > replayed ? static_cast<double>(end - replayed) * 32 / 1e6 : 0;
          if (lag > max_lag_ms.load()) {
            std::lock_guard lock(mu);
            worst = "primary: " + primary->dump() + "\nbackup: " + backup->dump();
          }
          max_lag_ms = std::max(max_lag_ms.load(), lag);
          max_primary_view_ms = std::max(max_primary_view_ms.load(), primary->value("lag_ms", 0.0));
          paced_ms = U64(*primary, "paced_ms");
          ++samples;
        }
        std::this_thread::sleep_for(every);
      }
    });
  }
  ~LagSampler() { Stop(); }
  void Stop() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
  std::atomic<bool> stop{false};
  std::atomic<double> max_lag_ms{0}, max_primary_view_ms{0};
  std::atomic<uint64_t> paced_ms{0};
  std::atomic<int> samples{0};
  std::mutex mu;
  std::string worst;  // both statuses at the largest lag, for failure messages
  std::thread thread;
};

// The lag is held to max_lag_ms itself. The primary's flush shim holds the vCPU once the log
// QEMU has written is past the backup's last acked position plus the hold point (90% of the
// bound - the longest recent instruction span). When ftd decided on the log it had read, the
// pair's lag went to 992-1052 ms for a 1000 ms bound under a replayer stopped 60% of the
// time: on 2 busy cores ftd read the FIFO 100-200 ms of guest time late.

void ExpectIdenticalConsoles(LockstepPair& pair) {
  std::string primary = pair.primary_console();
  std::string backup = pair.backup_console();
  EXPECT_GT(primary.size(), 2000u);
  EXPECT_TRUE(primary == backup) << FirstDifference(primary, backup);
}

TEST(LockstepTest, BackupConsoleIsByteIdenticalAfterTwoMinutesOfGuestTime) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  LockstepOptions options;
  options.vm.workload = "cpu,timer,chaos";
  options.vm.stream_port = FreeLoopbackPort();
  options.max_lag_ms = 2000;
  auto pair = LockstepPair::Start(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto& p = **pair;
  ASSERT_TRUE(p.WaitForFtState(p.primary(), proto::VM_FT_STATE_PROTECTED, 60s).ok())
      << ReadFile(p.primary().ftd_log()) << ReadFile(p.backup().ftd_log());
  LagSampler lag(p, 250ms);

  // Network input into the guest is part of the log too: hold a stream with echoes.
  ASSERT_TRUE(WaitForFileContaining(p.primary().console_log(p.vm()), "ftguest: ready", 90s));
  StreamClient client;
  ASSERT_TRUE(client.Connect("127.0.0.1", options.vm.stream_port, 30s).ok());
  auto deadline = Clock::now() + 300s;
  int echoes = 0;
  while (LastGuestTimeNs(p.primary_console()) < 120'000'000'000 && Clock::now() < deadline) {
    ASSERT_TRUE(client.SendEcho(fmt::format("echo-{}", echoes++)).ok());
    auto read = client.ReadStream(20, 20s);
    ASSERT_TRUE(read.ok()) << read.ToString();
  }
  ASSERT_GE(LastGuestTimeNs(p.primary_console()), 120'000'000'000)
      << "the guest did not reach two minutes of guest time within 300 s";
  ASSERT_TRUE(client.AwaitEchoes(20s).ok());
  client.Close();

  auto backup_status = p.Status(p.backup());
  ASSERT_TRUE(backup_status.ok()) << backup_status.status().ToString();
  EXPECT_EQ((*backup_status)["ft_state"], ProtoName(proto::VM_FT_STATE_REPLAYING))
      << backup_status->dump();
  auto primary_status = p.Status(p.primary());
  ASSERT_TRUE(primary_status.ok());
  EXPECT_EQ((*primary_status)["ft_state"], ProtoName(proto::VM_FT_STATE_PROTECTED))
      << primary_status->dump();
  EXPECT_GT(U64(*primary_status, "acked_bytes"), 100000u);
  lag.Stop();

  Status drained = p.StopPrimaryAndDrain(120s);
  ASSERT_TRUE(drained.ok()) << drained.ToString() << "\n" << ReadFile(p.backup().ftd_log());
  ExpectIdenticalConsoles(p);
  std::string console = p.primary_console();
  EXPECT_NE(console.find("cpu: round"), std::string::npos);
  EXPECT_NE(console.find("timer: tick"), std::string::npos);
  EXPECT_NE(console.find("chaos: "), std::string::npos);
  std::printf(
      "lockstep: %d echoes, %zu console bytes, max lag %.1f ms over %d samples, paced %llu ms\n",
      echoes, console.size(), lag.max_lag_ms.load(), lag.samples.load(),
      static_cast<unsigned long long>(lag.paced_ms.load()));
  EXPECT_LE(lag.max_lag_ms.load(), options.max_lag_ms) << lag.worst;
}

TEST(LockstepTest, BackupWithAnotherVmDefinitionIsRefusedByName) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  LockstepOptions options;
  options.vm.workload = "chaos";
  options.vm.data_disk = false;
  GuestVmOptions other = options.vm;
  other.workload = "timer";  // another kernel command line: replay would diverge
  options.backup_vm = other;
  auto pair = LockstepPair::Start(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto& p = **pair;
  ASSERT_TRUE(WaitForFileContaining(p.primary().ftd_log(), "config digest differs", 30s))
      << ReadFile(p.primary().ftd_log());
  EXPECT_TRUE(WaitForFileContaining(p.backup().ftd_log(), "config digest differs", 5s))
      << ReadFile(p.backup().ftd_log());
  auto st = p.Status(p.primary());
  ASSERT_TRUE(st.ok());
  EXPECT_EQ((*st)["ft_state"], ProtoName(proto::VM_FT_STATE_WAITING_FOR_BACKUP)) << st->dump();
  EXPECT_NE(st->value("ft_note", "").find("VM definitions differ"), std::string::npos)
      << st->dump();
  auto backup = p.Status(p.backup());
  ASSERT_TRUE(backup.ok());
  EXPECT_EQ((*backup)["ft_state"], ProtoName(proto::VM_FT_STATE_WAITING_FOR_PRIMARY))
      << backup->dump();
  EXPECT_EQ((*backup)["qemu_pid"], 0) << "no replayer may start for a refused primary";
}

// Stops and continues a process on a duty cycle: a backup host that is slower on purpose.
struct Throttle {
  Throttle(int pid, std::chrono::milliseconds stopped, std::chrono::milliseconds running) {
    thread = std::thread([=, this] {
      while (!stop) {
        kill(pid, SIGSTOP);
        std::this_thread::sleep_for(stopped);
        kill(pid, SIGCONT);
        std::this_thread::sleep_for(running);
      }
    });
  }
  ~Throttle() {
    stop = true;
    thread.join();
  }
  std::atomic<bool> stop{false};
  std::thread thread;
};

TEST(LockstepTest, LagStaysBoundedWithChannelLatencyAndASlowedBackup) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  LockstepOptions options;
  options.vm.workload = "cpu,chaos";
  options.vm.data_disk = false;
  options.max_lag_ms = 1000;
  options.channel_delay = 20ms;  // each way, through a relay on loopback
  auto pair = LockstepPair::Start(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto& p = **pair;
  ASSERT_TRUE(p.WaitForFtState(p.primary(), proto::VM_FT_STATE_PROTECTED, 60s).ok())
      << ReadFile(p.primary().ftd_log());
  ASSERT_TRUE(WaitForFileContaining(p.backup().console_log(p.vm()), "cpu: round 1 ", 120s))
      << ReadFile(p.backup().ftd_log());
  auto backup_status = p.Status(p.backup());
  ASSERT_TRUE(backup_status.ok());
  int replayer = (*backup_status)["qemu_pid"].get<int>();
  ASSERT_GT(replayer, 0);
  {
    LagSampler lag(p, 100ms);
    {
      Throttle slow(replayer, 60ms, 40ms);  // the replayer gets 40% of its time
      std::this_thread::sleep_for(20s);
    }
    std::this_thread::sleep_for(2s);
    lag.Stop();
    std::printf(
        "slowed backup + 20 ms channel delay: max lag %.1f ms (bound %d) over %d samples, "
        "primary paced %llu ms\n",
        lag.max_lag_ms.load(), options.max_lag_ms, lag.samples.load(),
        static_cast<unsigned long long>(lag.paced_ms.load()));
    EXPECT_GT(lag.samples.load(), 50);
    EXPECT_LE(lag.max_lag_ms.load(), options.max_lag_ms) << lag.worst;
    EXPECT_GT(lag.paced_ms.load(), 0u) << "the primary was never paced: the test proves nothing";
    // What the primary said when it was over the bound (for the open overshoot question).
    std::istringstream log(ReadFile(p.primary().ftd_log()));
    for (std::string line; std::getline(log, line);) {
      if (line.find("over max_lag_ms") != std::string::npos) std::printf("%s\n", line.c_str());
    }
  }
  auto primary_status = p.Status(p.primary());
  ASSERT_TRUE(primary_status.ok());
  EXPECT_EQ((*primary_status)["ft_state"], ProtoName(proto::VM_FT_STATE_PROTECTED))
      << primary_status->dump();
  Status drained = p.StopPrimaryAndDrain(120s);
  ASSERT_TRUE(drained.ok()) << drained.ToString() << "\n" << ReadFile(p.backup().ftd_log());
  ExpectIdenticalConsoles(p);
}

// What the backup's replayer says on its operator monitor (for failure messages): does its
// main loop answer at all, and where is it?
std::string AskReplayer(LockstepPair& pair) {
  std::string socket = pair.backup().monitor_socket(pair.vm());
  asio::io_context io;
  auto qmp = replay::QmpClient::Create(io, "replayer");
  if (Status s = replay::ConnectBlocking(io, *qmp, socket, 3s); !s.ok()) return s.ToString();
  std::string out;
  for (const char* cmd : {"query-status", "query-replay"}) {
    auto r = replay::ExecuteBlocking(io, *qmp, cmd, replay::Json::object(), 3s);
    out += fmt::format("{}: {}; ", cmd, r.ok() ? r->dump() : r.status().ToString());
  }
  return out;
}

// Reads stream lines for `span`, returning the longest gap between two of them.
std::chrono::milliseconds LongestStreamGap(StreamClient& client, std::chrono::milliseconds span,
                                           LockstepPair& pair) {
  auto end = Clock::now() + span;
  auto last = Clock::now();
  std::chrono::milliseconds longest{0};
  while (Clock::now() < end) {
    Status s = client.ReadStream(1, 10s);
    auto now = Clock::now();
    longest = std::max(longest, std::chrono::duration_cast<std::chrono::milliseconds>(now - last));
    last = now;
    if (!s.ok()) {
      auto primary = pair.Status(pair.primary());
      auto backup = pair.Status(pair.backup());
      ADD_FAILURE() << "stream broke: " << s.ToString() << "\nprimary: "
                    << (primary.ok() ? primary->dump() : primary.status().ToString())
                    << "\nbackup: " << (backup.ok() ? backup->dump() : backup.status().ToString())
                    << "\nreplayer: " << AskReplayer(pair);
      break;
    }
  }
  return longest;
}

void BackupFailureTest(int signal, const char* what) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  LockstepOptions options;
  options.vm.workload = "timer,chaos";
  options.vm.data_disk = false;
  options.vm.stream_port = FreeLoopbackPort();
  options.heartbeat_timeout_ms = 1000;
  options.max_lag_ms = 500;  // pacing engages soon once acks stop
  auto pair = LockstepPair::Start(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto& p = **pair;
  ASSERT_TRUE(p.WaitForFtState(p.primary(), proto::VM_FT_STATE_PROTECTED, 60s).ok());
  ASSERT_TRUE(WaitForFileContaining(p.primary().console_log(p.vm()), "ftguest: ready", 150s))
      << ReadFile(p.primary().ftd_log());
  StreamClient client;
  ASSERT_TRUE(client.Connect("127.0.0.1", options.vm.stream_port, 30s).ok());
  ASSERT_TRUE(client.ReadStream(20, 20s).ok());
  auto protected_status = p.Status(p.primary());
  ASSERT_TRUE(protected_status.ok());
  ASSERT_EQ((*protected_status)["ft_state"], ProtoName(proto::VM_FT_STATE_PROTECTED))
      << protected_status->dump();

  auto before = LongestStreamGap(client, 2s, p);
  auto failed_at = Clock::now();
  ASSERT_EQ(kill(p.backup().process()->pid(), signal), 0);
  // The primary's own view, polled while the stream is read.
  std::atomic<int64_t> detected_ms{-1};
  std::thread watcher([&] {
    if (p.WaitForFtState(p.primary(), proto::VM_FT_STATE_UNPROTECTED, 4s).ok()) {
      detected_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - failed_at).count();
    }
  });
  auto gap = LongestStreamGap(client, 4s, p);
  watcher.join();
  ASSERT_GE(detected_ms.load(), 0) << "primary not unprotected 4 s after the backup failed\n"
                                   << ReadFile(p.primary().ftd_log());
  auto detected = std::chrono::milliseconds(detected_ms.load());
  auto status = p.Status(p.primary());
  ASSERT_TRUE(status.ok());
  std::printf("%s: longest stream gap %lld ms (before: %lld ms), unprotected after %lld ms: %s\n",
              what, static_cast<long long>(gap.count()), static_cast<long long>(before.count()),
              static_cast<long long>(detected.count()), status->value("ft_note", "").c_str());
  EXPECT_LE(gap.count(), options.heartbeat_timeout_ms + 500);
  EXPECT_LE(detected.count(), options.heartbeat_timeout_ms + 500);
  EXPECT_TRUE(WaitForFileContaining(p.primary().ftd_log(), "running UNPROTECTED", 1s));
  // The primary keeps serving after the failure, echoes included.
  ASSERT_TRUE(client.SendEcho("after").ok());
  ASSERT_TRUE(client.AwaitEchoes(10s).ok());
  if (signal == SIGSTOP) kill(p.backup().process()->pid(), SIGCONT);
}

TEST(LockstepTest, KilledBackupNeverStallsThePrimary) {
  BackupFailureTest(SIGKILL, "kill -9 backup");
}

TEST(LockstepTest, HungBackupNeverStallsThePrimaryBeyondTheHeartbeatTimeout) {
  BackupFailureTest(SIGSTOP, "SIGSTOP backup");
}

}  // namespace
}  // namespace ft::testing
