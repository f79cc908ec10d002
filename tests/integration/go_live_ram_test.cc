// Go-live without the guest's RAM in the snapshot, with real QEMU and no ftd: a recording
// QEMU whose RAM is a GuestRam is saved with SnapshotRam::kInGuestRamFile and quits, and a
// second QEMU maps the same file and starts with -loadvm (loadvm_without_ram), as
// BackupVm's go-live does. It proves what
// replay/qemu-patches/loadvm-without-ram-from-a-shared-memory-file.patch fixes: without
// the patch the second QEMU does not start (no migration.x-ignore-shared property), or,
// with half of it, its first reset writes the kernel image over the guest's RAM.
#include <unistd.h>

#include <asio/io_context.hpp>
#include <optional>
#include <regex>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ft/replay/guest_ram.h"
#include "ft/replay/process.h"
#include "ft/replay/qemu_command.h"
#include "ft/replay/qmp_client.h"
#include "ft/replay/savevm.h"
#include "ft/replay/vm_state_drive.h"
#include "ftd_instance.h"
#include "guest_client.h"
#include "temp_dir.h"

namespace ft::testing {
namespace {

using namespace std::chrono_literals;

std::string Ram(const replay::GuestRam& ram) {
  std::string bytes(ram.bytes(), '\0');
  EXPECT_EQ(pread(ram.fd(), bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  return bytes;
}

int LastTick(const std::string& console) {
  static const std::regex tick("timer: tick ([0-9]+) ");
  int last = -1;
  for (std::sregex_iterator it(console.begin(), console.end(), tick), end; it != end; ++it) {
    last = std::stoi((*it)[1]);
  }
  return last;
}

class GoLiveRamTest : public ::testing::Test {
 protected:
  // A recording QEMU of `spec` on `ram`, its log in `rr_file`.
  std::unique_ptr<replay::ChildProcess> Start(const std::string& tag,
                                              const replay::LaunchOptions& options) {
    replay::LaunchPaths paths{dir_.path() + "/" + tag + ".qmp", console_,
                              dir_.path() + "/" + tag + ".rr", "", ""};
    paths.vm_state_drive = dir_.path() + "/vm-state.qcow2";
    paths.guest_ram = ram_->path_in_child();
    replay::SpawnOptions spawn;
    spawn.output_path = dir_.path() + "/qemu.log";
    spawn.inherit_fds = {ram_->fd()};
    auto child = replay::ChildProcess::Spawn(BuildQemuCommand(spec_, options, paths), spawn);
    EXPECT_TRUE(child.ok()) << child.status().ToString();
    if (!child.ok()) return nullptr;
    qmp_ = replay::QmpClient::Create(io_, spec_.name);
    Status connected = replay::ConnectBlocking(io_, *qmp_, paths.qmp_socket, 30s);
    EXPECT_TRUE(connected.ok()) << connected.ToString() << "\nQEMU said:\n"
                                << replay::TailOfFile(spawn.output_path);
    return std::move(child).value();
  }

  Status Execute(const std::string& command) {
    return replay::ExecuteBlocking(io_, *qmp_, command, replay::Json::object(), 30s).status();
  }

  void SetUp() override {
    ASSERT_FALSE(GuestDir().empty()) << "guest not built (scripts/build.sh)";
    ASSERT_FALSE(dir_.path().empty()) << "mkdtemp";
    spec_.name = "ram1";
    spec_.kernel = GuestKernel();
    spec_.qemu_binary = QemuBinary();
    spec_.initrd = GuestDir() + "/initrd.img";
    spec_.cmdline = "console=ttyS0 ftguest.workload=timer nohz=off";
    console_ = dir_.path() + "/console.log";
    ASSERT_TRUE(replay::CreateVmStateDrive(dir_.path() + "/vm-state.qcow2").ok());
    auto ram = replay::GuestRam::Create(spec_.name, uint64_t{spec_.memory_mib} << 20);
    ASSERT_TRUE(ram.ok()) << ram.status().ToString();
    ram_ = std::move(ram).value();
  }

  TempDir dir_{"ftd-go-live-ram-"};
  asio::io_context io_;
  domain::VmSpec spec_;
  std::string console_;
  std::shared_ptr<replay::GuestRam> ram_;
  std::shared_ptr<replay::QmpClient> qmp_;
};

TEST_F(GoLiveRamTest, ACopyStartsFromASnapshotWithoutTheRamAndTheGuestGoesOn) {
  // The first copy boots and runs until the guest's timer has ticked a few times.
  auto first = Start("first", {replay::RunMode::kRecord, false});
  ASSERT_TRUE(first);
  ASSERT_TRUE(WaitForFileContaining(console_, "timer: tick 3 ", 180s))
      << "the guest did not run; console:\n"
      << ReadFile(console_);
  ASSERT_TRUE(Execute("stop").ok());
  std::optional<Status> saved;
  replay::SaveVm(qmp_, replay::kGoLiveSnapshot, replay::SnapshotRam::kInGuestRamFile, 30s,
                 [&](Status s) { saved = s; });
  while (!saved) io_.run_one_for(1s);
  ASSERT_TRUE(saved->ok()) << saved->ToString();
  (void)Execute("quit");
  ASSERT_TRUE(first->WaitFor(30s).has_value());
  int ticks_before = LastTick(ReadFile(console_));
  std::string ram_at_save = Ram(*ram_);

  // The second copy loads the snapshot and maps the same RAM, paused after the load.
  replay::LaunchOptions load{replay::RunMode::kRecord, false};
  load.start_paused = true;
  load.loadvm = replay::kGoLiveSnapshot;
  load.loadvm_without_ram = true;
  auto second = Start("second", load);
  ASSERT_TRUE(second) << replay::TailOfFile(dir_.path() + "/qemu.log");
  ASSERT_TRUE(second->running()) << "QEMU did not start from the snapshot:\n"
                                 << replay::TailOfFile(dir_.path() + "/qemu.log");
  std::string ram_loaded = Ram(*ram_);
  size_t changed = 0;
  for (size_t page = 0; page < ram_loaded.size(); page += 4096) {
    if (ram_loaded.compare(page, 4096, ram_at_save, page, 4096) != 0) ++changed;
  }
  EXPECT_EQ(changed, 0u) << "the new QEMU wrote into the guest's RAM before it ran";
  ram_at_save.clear();
  ram_loaded.clear();

  // And the guest goes on where it was: the next ticks come.
  ASSERT_TRUE(Execute("cont").ok());
  std::string next = fmt::format("timer: tick {} ", ticks_before + 2);
  EXPECT_TRUE(WaitForFileContaining(console_, next, 60s))
      << "the guest did not go on after tick " << ticks_before << "; console tail:\n"
      << replay::TailOfFile(console_) << "\nQEMU said:\n"
      << replay::TailOfFile(dir_.path() + "/qemu.log");
  EXPECT_TRUE(second->running()) << "the guest ended (a triple fault ends it: -no-reboot)";
  (void)Execute("quit");
  if (!second->WaitFor(30s)) second->Terminate(1s);
}

}  // namespace
}  // namespace ft::testing
