// ftd boots the real guest under real QEMU (TCG): QMP says running, the console shows the
// guest's banner, the guest's TCP services answer from the host, and SIGTERM leaves no QEMU
// process, socket or runtime dir behind.
#include <signal.h>

#include <asio/io_context.hpp>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "ft/replay/qmp_client.h"
#include "ftd_instance.h"
#include "guest_client.h"

namespace ft::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kBootTimeout = 90s;  // TCG boot is ~3-6 s; CI machines may be loaded

bool ProcessAlive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content;
  if (!std::getline(stat, content)) return false;
  return content.find(") Z ") == std::string::npos;
}

class FtdBootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (GuestDir().empty())
      GTEST_FAIL() << "guest not built: run scripts/build-guest.sh build/guest";
    auto inst = FtdInstance::Create("boot");
    ASSERT_TRUE(inst.ok()) << inst.status().ToString();
    ftd_ = std::move(inst).value();
  }
  std::unique_ptr<FtdInstance> ftd_;
};

TEST_F(FtdBootTest, BootsServesAndStopsCleanly) {
  GuestVmOptions vm;
  vm.stream_port = FreeLoopbackPort();
  vm.records_port = FreeLoopbackPort();
  ASSERT_TRUE(ftd_->WriteConfig(ftd_->GuestVmConfig(vm)).ok());
  ASSERT_TRUE(ftd_->Start().ok());

  // The console shows the guest's banner.
  ASSERT_TRUE(WaitForFileContaining(ftd_->console_log(vm.name), "ftguest: ready", kBootTimeout))
      << "no banner; console:\n"
      << ReadFile(ftd_->console_log(vm.name)) << "\nftd log:\n"
      << ReadFile(ftd_->ftd_log());
  EXPECT_NE(ReadFile(ftd_->console_log(vm.name)).find("disk=yes"), std::string::npos)
      << "the data disk did not mount";

  // QMP (our client, on the operator monitor ftd gave the VM) reports running.
  {
    asio::io_context io;
    auto qmp = replay::QmpClient::Create(io, vm.name);
    ASSERT_TRUE(replay::ConnectBlocking(io, *qmp, ftd_->monitor_socket(vm.name), 10s).ok());
    auto status = replay::ExecuteBlocking(io, *qmp, "query-status", replay::Json::object(), 10s);
    ASSERT_TRUE(status.ok()) << status.status().ToString();
    EXPECT_EQ(status->value("status", ""), "running");
    EXPECT_TRUE(status->value("running", false));
    qmp->Close();
  }

  // The stream+echo service answers from the host with a correct sequence.
  StreamClient stream;
  ASSERT_TRUE(stream.Connect("127.0.0.1", vm.stream_port, 60s).ok());
  ASSERT_TRUE(stream.SendEcho("hello-from-host").ok());
  ASSERT_TRUE(stream.SendEcho("second line 2").ok());
  auto s = stream.ReadStream(50, 30s);
  ASSERT_TRUE(s.ok()) << s.ToString();
  s = stream.AwaitEchoes(10s);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stream.echoes_matched(), 2u);
  EXPECT_GE(stream.stream_lines(), 51u);

  // The records service appends to the mounted disk with fsync and acknowledges.
  RecordClient records;
  ASSERT_TRUE(records.Connect("127.0.0.1", vm.records_port, 30s).ok());
  for (uint64_t n = 1; n <= 20; ++n) {
    ASSERT_TRUE(records.Append(n, "payload-" + std::to_string(n), 10s).ok()) << n;
  }
  auto verify = records.VerifyAll(10s);
  ASSERT_TRUE(verify.ok()) << verify.status().ToString();
  EXPECT_EQ(verify->count, 20u);
  EXPECT_EQ(verify->torn, 0u);
  EXPECT_EQ(verify->last, 20u);
  stream.Close();
  records.Close();

  // SIGTERM: ftd quits QEMU and removes its runtime files.
  pid_t qemu_pid = 0;
  std::ifstream(ftd_->pid_file(vm.name)) >> qemu_pid;
  ASSERT_GT(qemu_pid, 0);
  ASSERT_TRUE(ProcessAlive(qemu_pid));
  auto exit = ftd_->Stop(30s);
  ASSERT_TRUE(exit.ok()) << exit.status().ToString();
  EXPECT_TRUE(exit->clean()) << exit->Describe() << "\n" << ReadFile(ftd_->ftd_log());
  EXPECT_FALSE(ProcessAlive(qemu_pid)) << "QEMU pid " << qemu_pid << " outlived ftd";
  EXPECT_FALSE(fs::exists(ftd_->qmp_socket(vm.name)));
  EXPECT_FALSE(fs::exists(ftd_->monitor_socket(vm.name)));
  EXPECT_FALSE(fs::exists(ftd_->run_dir())) << "runtime dir left behind";
  // What an operator reads afterwards stays: the console and QEMU's output.
  EXPECT_TRUE(fs::exists(ftd_->console_log(vm.name)));
  std::string log = ReadFile(ftd_->ftd_log());
  EXPECT_NE(log.find("running (QMP status 'running'"), std::string::npos) << log;
  EXPECT_NE(log.find("stopped"), std::string::npos) << log;
}

TEST_F(FtdBootTest, KillingFtdLeavesNoOrphanQemu) {
  GuestVmOptions vm;
  vm.data_disk = false;
  ASSERT_TRUE(ftd_->WriteConfig(ftd_->GuestVmConfig(vm)).ok());
  ASSERT_TRUE(ftd_->Start().ok());
  ASSERT_TRUE(WaitForFileContaining(ftd_->pid_file(vm.name), "\n", 30s));
  pid_t qemu_pid = 0;
  std::ifstream(ftd_->pid_file(vm.name)) >> qemu_pid;
  ASSERT_GT(qemu_pid, 0);
  ftd_->process()->Signal(SIGKILL);
  ftd_->process()->WaitFor(10s);
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = !ProcessAlive(qemu_pid);
    if (!gone) std::this_thread::sleep_for(25ms);
  }
  EXPECT_TRUE(gone) << "QEMU pid " << qemu_pid << " survived a SIGKILLed ftd";
}

TEST_F(FtdBootTest, BadConfigIsRefusedAtStartNamingTheKey) {
  GuestVmOptions vm;
  std::string text = ftd_->GuestVmConfig(vm) + "memroy_mib = 512\n";
  ASSERT_TRUE(ftd_->WriteConfig(text).ok());
  ASSERT_TRUE(ftd_->Start().ok());
  auto exit = ftd_->process()->WaitFor(10s);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->code, 2);
  std::string log = ReadFile(ftd_->ftd_log());
  EXPECT_NE(log.find("[vm web1] memroy_mib: unknown key"), std::string::npos) << log;

  // A kernel that does not exist: refused before anything starts, naming VM, key and path.
  text = ftd_->GuestVmConfig(vm);
  text.replace(text.find(GuestKernel()), GuestKernel().size(), GuestDir() + "/vmlinuz-missing");
  ASSERT_TRUE(ftd_->WriteConfig(text).ok());
  ASSERT_TRUE(ftd_->Start().ok());
  exit = ftd_->process()->WaitFor(10s);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->code, 2);
  log = ReadFile(ftd_->ftd_log());
  EXPECT_NE(log.find("vm 'web1': kernel '" + GuestDir() + "/vmlinuz-missing' does not exist"),
            std::string::npos)
      << log;
  EXPECT_FALSE(fs::exists(ftd_->run_dir())) << "a refused start must leave nothing behind";
}

TEST_F(FtdBootTest, QemuDyingIsReportedWithItsReason) {
  GuestVmOptions vm;
  vm.data_disk = false;
  ASSERT_TRUE(ftd_->WriteConfig(ftd_->GuestVmConfig(vm)).ok());
  ASSERT_TRUE(ftd_->Start().ok());
  std::string log_path = ftd_->ftd_log();
  ASSERT_TRUE(WaitForFileContaining(log_path, "running (QMP status", 60s)) << ReadFile(log_path);
  pid_t qemu_pid = 0;
  std::ifstream(ftd_->pid_file(vm.name)) >> qemu_pid;
  ASSERT_GT(qemu_pid, 0);
  kill(qemu_pid, SIGKILL);
  ASSERT_TRUE(WaitForFileContaining(log_path, "killed by signal 9 (SIGKILL) unexpectedly", 10s))
      << ReadFile(log_path);
  // ftd itself keeps running (other VMs would go on) and still stops cleanly.
  EXPECT_TRUE(ftd_->process()->running());
  auto exit = ftd_->Stop(20s);
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->clean());
  EXPECT_FALSE(fs::exists(ftd_->run_dir()));
}

}  // namespace
}  // namespace ft::testing
