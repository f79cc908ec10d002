// What ftd's QEMU writes into a record log besides what the guest does, and that a replayer
// gets through what is left. Every log event is a round of locks for the replayer, and an
// event only its main loop can take is a thread switch while its vCPU waits, so a log dense
// with events the guest did not ask for makes the backup the slower half of the pair. Real
// QEMU (ftd's build), recording to a regular file.
//   - replay/qemu-patches/i386-pause-stays-in-cpu-exec-with-one-vcpu.patch: a PAUSE ended
//     cpu_exec, and each end is a WARP_ACCOUNT checkpoint plus an instruction event; the
//     kernel's udelay() pauses every 16 instructions.
//   - BuildQemuCommand (replay/src/qemu_command.cc), rr modes: the RTC on the virtual clock,
//     so a pass of the recorder's main loop writes no CHECKPOINT_CLOCK_HOST; qcow2 images
//     without a cache-clean timer, which woke the main loop at every clock notification.
//   - replay/qemu-patches/aio-clock-notify-only-contexts-with-timers.patch: a replayer whose
//     next event only its main loop takes wakes the main loop itself.

#include <atomic>
#include <cstdio>
#include <map>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ft/replay/process.h"
#include "ft/replay/qemu_command.h"
#include "ft/replay/rr_log.h"
#include "ft/replay/vm_state_drive.h"
#include "ftd_instance.h"
#include "guest_client.h"
#include "proc_status.h"
#include "qmp_line_client.h"
#include "rr_log_file.h"
#include "temp_dir.h"

namespace ft::testing {
namespace {

using namespace std::chrono_literals;

constexpr uint8_t kCheckpointClockHost = replay::rr::kCheckpoint + 5;  // CHECKPOINT_CLOCK_HOST
constexpr uint8_t kCheckpointWarpAccount = replay::rr::kCheckpoint + 1;

struct LogShape {
  uint64_t events = 0;
  uint64_t short_spans = 0;  // INSTRUCTION events of fewer than 32 instructions
  std::map<uint8_t, uint64_t> by_kind;
};

Result<LogShape> ReadLogShape(const std::string& path) {
  FT_ASSIGN_OR_RETURN(RecordLogFile log, ReadRecordLogFile(path));
  LogShape shape;
  shape.events = log.events.size();
  for (const auto& e : log.events) {
    ++shape.by_kind[e.kind];
    if (e.kind == replay::rr::kInstruction && e.instructions < 32) ++shape.short_spans;
  }
  return shape;
}

std::string Kernel() { return GuestKernel(); }
std::string Initrd() { return GuestDir() + "/initrd.img"; }

TEST(RrLogDensityTest, ABootingGuestWritesEventsForWhatItDoesNotForHowItWaits) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built (scripts/build.sh)";
  TempDir dir("ftd-rr-density-");
  ASSERT_FALSE(dir.path().empty()) << "mkdtemp";
  // ftd's own command line for a recorder, with the NIC and the VM-state drive every
  // protected VM has; the guest brings its e1000 link up, then computes.
  domain::VmSpec spec;
  spec.name = "density";
  spec.qemu_binary = QemuBinary();
  spec.kernel = Kernel();
  spec.initrd = Initrd();
  spec.cmdline =
      "console=ttyS0 ftguest.ip=10.0.2.15/24 ftguest.gw=10.0.2.2 ftguest.workload=cpu "
      "ftguest.cpu_rounds=100";
  spec.nic = domain::NicSpec{};
  replay::LaunchPaths paths{
      dir.path() + "/qmp.sock",      dir.path() + "/console.log", dir.path() + "/rr.log", "", "",
      dir.path() + "/vm-state.qcow2"};
  ASSERT_TRUE(replay::CreateVmStateDrive(paths.vm_state_drive).ok());
  replay::LaunchOptions launch;
  launch.mode = replay::RunMode::kRecord;
  replay::SpawnOptions options;
  options.output_path = dir.path() + "/qemu.log";
  auto qemu = replay::ChildProcess::Spawn(replay::BuildQemuCommand(spec, launch, paths), options);
  ASSERT_TRUE(qemu.ok()) << qemu.status().ToString();
  // Booted and the link up (the init script configures eth0 first): the first round is done.
  bool computing = WaitForFileContaining(paths.console_log, "cpu: round 1 ", 120s);
  // QEMU's main thread (tid = pid): each pass of its main loop that slept is a switch.
  auto before = ContextSwitches((*qemu)->pid(), (*qemu)->pid());
  std::this_thread::sleep_for(2s);
  auto after = ContextSwitches((*qemu)->pid(), (*qemu)->pid());
  (*qemu)->Terminate(2s);
  ASSERT_TRUE(computing) << "the guest did not start its workload within 120 s; console:\n"
                         << ReadFile(paths.console_log) << "\nQEMU:\n"
                         << ReadFile(options.output_path);
  auto shape = ReadLogShape(paths.rr_file);
  ASSERT_TRUE(shape.ok()) << shape.status().ToString();
  ASSERT_TRUE(before && after) << "no context switch counts for QEMU's main thread";
  double wakeups = static_cast<double>(*after - *before) / 2;
  std::printf(
      "record log: %llu events, %llu spans under 32 instructions, %llu WARP_ACCOUNT, %llu "
      "CLOCK_HOST checkpoints; main loop %.0f wake-ups a second while the guest computes\n",
      static_cast<unsigned long long>(shape->events),
      static_cast<unsigned long long>(shape->short_spans),
      static_cast<unsigned long long>(shape->by_kind[kCheckpointWarpAccount]),
      static_cast<unsigned long long>(shape->by_kind[kCheckpointClockHost]), wakeups);
  // Measured on the 2-core build machine: 820,849 short spans without the PAUSE patch
  // (450,415 of 16 instructions, the link's udelay() loops), 7,108 with it.
  EXPECT_LT(shape->short_spans, 50'000u) << "the guest's PAUSE loops write log events";
  // With the RTC on the host clock and the cache-clean timer: 27,823; now 0.
  EXPECT_LT(shape->by_kind[kCheckpointClockHost], 100u)
      << "passes of the main loop write CHECKPOINT_CLOCK_HOST: an RTC timer on the host clock";
  // The cache-clean timer woke the main loop at each virtual-clock notification: 11,014 a
  // second with it, 2 without.
  EXPECT_LT(wakeups, 100.0) << "something wakes the recorder's main loop while the guest computes";
}

// A QMP client that sends `query-status` every `period` until stopped, and reads the answers.
class QmpPoker {
 public:
  QmpPoker(std::string socket, std::chrono::milliseconds period)
      : thread_([this, socket = std::move(socket), period] { Run(socket, period); }) {}
  ~QmpPoker() {
    stop_ = true;
    thread_.join();
  }
  int answered() const { return answered_; }

 private:
  void Run(const std::string& socket, std::chrono::milliseconds period) {
    QmpLineClient qmp;
    // Not connected: answered() stays 0, which the test reports. The client sends with
    // MSG_NOSIGNAL: a QEMU that has gone ends the loop, not the test with a SIGPIPE.
    if (!qmp.Connect(socket, 30s, 5s).ok()) return;
    while (!stop_) {
      auto answer = qmp.Execute(R"({"execute":"query-status"})");
      if (!answer.ok() || answer->find("\"return\"") == std::string::npos) return;
      ++answered_;
      std::this_thread::sleep_for(period);
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  std::thread thread_;
};

// QEMU's defaults (the RTC on the host clock) on purpose: each QMP command the recorder
// answers is a pass of its main loop and a CHECKPOINT_CLOCK_HOST in the log, which only the
// replayer's main loop takes. Without the wake in the aio patch the replayer stood still at
// the first one that followed a due virtual timer, at 100% CPU, forever.
TEST(RrLogDensityTest, AReplayerTakesEventsOnlyItsMainLoopCanTake) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built (scripts/build.sh)";
  TempDir dir("ftd-rr-mainloop-");
  ASSERT_FALSE(dir.path().empty()) << "mkdtemp";
  auto qemu_argv = [&](const std::string& mode) {
    return std::vector<std::string>{
        QemuBinary(),
        "-name",
        "mainloop,debug-threads=on",
        "-machine",
        "pc",
        "-accel",
        "tcg",
        "-smp",
        "1",
        "-m",
        "256",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-icount",
        fmt::format("shift=5,rr={},rrfile={}/rr.log", mode, dir.path()),
        "-kernel",
        Kernel(),
        "-initrd",
        Initrd(),
        "-append",
        "console=ttyS0 ftguest.workload=cpu ftguest.cpu_rounds=2",
        "-chardev",
        fmt::format("file,id=c0,path={}/console-{}.log", dir.path(), mode),
        "-serial",
        "chardev:c0",
        "-chardev",
        fmt::format("socket,id=q,path={}/qmp-{}.sock,server=on,wait=off", dir.path(), mode),
        "-mon",
        "chardev=q,mode=control"};
  };
  replay::SpawnOptions options;
  options.output_path = dir.path() + "/qemu-record.log";
  const std::string recorded = dir.path() + "/console-record.log";
  int answered = 0;
  {
    auto recorder = replay::ChildProcess::Spawn(qemu_argv("record"), options);
    ASSERT_TRUE(recorder.ok()) << recorder.status().ToString();
    std::optional<QmpPoker> poker(std::in_place, dir.path() + "/qmp-record.sock", 5ms);
    bool done = WaitForFileContaining(recorded, "cpu: done", 120s);
    answered = poker->answered();
    poker.reset();               // stopped before its QEMU is
    (*recorder)->Terminate(2s);  // the log ends with what was written; replay stops there
    ASSERT_TRUE(done) << "the recording guest did not finish within 120 s:\n"
                      << ReadFile(recorded) << ReadFile(options.output_path);
  }
  auto shape = ReadLogShape(dir.path() + "/rr.log");
  ASSERT_TRUE(shape.ok()) << shape.status().ToString();
  std::printf("recorder answered %d QMP commands; %llu CLOCK_HOST checkpoints in the log\n",
              answered, static_cast<unsigned long long>(shape->by_kind[kCheckpointClockHost]));
  ASSERT_GT(shape->by_kind[kCheckpointClockHost], 1000u)
      << "the case this test is for did not happen: too few main-loop events in the log";

  options.output_path = dir.path() + "/qemu-replay.log";
  auto replayer = replay::ChildProcess::Spawn(qemu_argv("replay"), options);
  ASSERT_TRUE(replayer.ok()) << replayer.status().ToString();
  const std::string replayed = dir.path() + "/console-replay.log";
  bool done = WaitForFileContaining(replayed, "cpu: done", 120s);
  (*replayer)->Terminate(2s);
  ASSERT_TRUE(done) << "the replayer stood still: " << ReadFile(replayed).size() << " of "
                    << ReadFile(recorded).size() << " console bytes after 120 s\n"
                    << ReadFile(options.output_path);
  std::string expected = ReadFile(recorded);
  EXPECT_EQ(ReadFile(replayed).substr(0, expected.size()), expected);
}

}  // namespace
}  // namespace ft::testing
