// How many events ftd's QEMU writes into a record log for a guest doing nothing special:
// each one is a round of locks and often a thread switch for the replayer, so a log dense
// with events the guest did not ask for makes the backup the slower half of the pair. Real
// QEMU (ftd's build), launched with ftd's own command line (BuildQemuCommand, record mode,
// with the NIC and the VM-state drive every protected VM has), recording to a regular file
// while the guest boots, brings its e1000 link up and starts its CPU workload.
//   - replay/qemu-patches/i386-pause-stays-in-cpu-exec-with-one-vcpu.patch: a PAUSE ended
//     cpu_exec, and each end is a WARP_ACCOUNT checkpoint plus an instruction event; the
//     kernel's udelay() pauses every 16 instructions.
//   - Qcow2Options (replay/src/qemu_command.cc): the VM-state drive's qcow2 cache-clean
//     timer woke the main loop at every virtual-clock notification, and each main-loop pass
//     wrote a CHECKPOINT_CLOCK_HOST and two host clock reads.
#include <unistd.h>

#include <cstdio>
#include <map>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ft/replay/process.h"
#include "ft/replay/qemu_command.h"
#include "ft/replay/rr_log.h"
#include "ft/replay/vm_state_drive.h"
#include "ftd_instance.h"
#include "guest_client.h"
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
  std::string bytes = ReadFile(path);
  if (bytes.size() < replay::rr::kFileHeaderSize) {
    return DataLoss(fmt::format("{}: {} bytes, not a record log", path, bytes.size()));
  }
  replay::RrLogParser parser;
  std::vector<replay::RrEvent> events;
  // A log cut by SIGTERM may end inside an event: the parser keeps that part pending.
  FT_RETURN_IF_ERROR(
      parser.Feed(std::string_view(bytes).substr(replay::rr::kFileHeaderSize), &events));
  LogShape shape;
  shape.events = events.size();
  for (const auto& e : events) {
    ++shape.by_kind[e.kind];
    if (e.kind == replay::rr::kInstruction && e.instructions < 32) ++shape.short_spans;
  }
  return shape;
}

TEST(RrLogDensityTest, ABootingGuestWritesEventsForWhatItDoesNotForHowItWaits) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built (scripts/build.sh)";
  TempDir dir("ftd-rr-density-");
  ASSERT_FALSE(dir.path().empty()) << "mkdtemp";
  domain::VmSpec spec;
  spec.name = "density";
  spec.qemu_binary = QemuBinary();
  spec.kernel = GuestKernel();
  spec.initrd = GuestDir() + "/initrd.img";
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
  // Booted, the link up (the init script configures eth0 first), and the workload running:
  // its first round is done.
  bool ran = WaitForFileContaining(paths.console_log, "cpu: round 2 ", 120s);
  (*qemu)->Terminate(2s);
  ASSERT_TRUE(ran) << "the guest did not start its workload within 120 s; console:\n"
                   << ReadFile(paths.console_log) << "\nQEMU:\n"
                   << ReadFile(options.output_path);
  auto shape = ReadLogShape(paths.rr_file);
  ASSERT_TRUE(shape.ok()) << shape.status().ToString();
  std::printf(
      "record log: %llu events, %llu spans under 32 instructions, %llu WARP_ACCOUNT, %llu "
      "CLOCK_HOST checkpoints\n",
      static_cast<unsigned long long>(shape->events),
      static_cast<unsigned long long>(shape->short_spans),
      static_cast<unsigned long long>(shape->by_kind[kCheckpointWarpAccount]),
      static_cast<unsigned long long>(shape->by_kind[kCheckpointClockHost]));
  // Measured on the 2-core build machine (boot + link + 3 workload rounds, by hand): 824,580
  // short spans without the PAUSE patch (450,415 of 16 instructions, the link's udelay()
  // loops), 7,130 with it.
  EXPECT_LT(shape->short_spans, 50'000u) << "the guest's PAUSE loops write log events";
  // With the cache-clean timer: 34,388 CLOCK_HOST checkpoints in 10 s; without: 32-66.
  EXPECT_LT(shape->by_kind[kCheckpointClockHost], 1'000u)
      << "every main-loop pass writes a CLOCK_HOST checkpoint: something wakes it under icount";
}

}  // namespace
}  // namespace ft::testing
