// A daemon that never stalls (issue 19): host B serves `ftctl enable` of a second VM, with
// a disk copy of hundreds of MiB, while it is the backup of a protected VM. Writing,
// hashing and fsyncing the received replica, and starting the new backup, must not hold up
// B's event loop: the first VM keeps its heartbeats (no "no frame from peer", no failover),
// its lag stays bounded, and neither ftd's loop watchdog reports a stall of 300 ms or more. Two
// ftds in the lab, real QEMU, libvirtd for the second VM's definition. Needs root; skips without
// (fails under CI=true).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lab.h"
#include "lab_pair.h"
#include "libvirt_domains.h"
#include "libvirt_lab_test.h"

namespace ft::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Big enough that writing and fsyncing it takes seconds on a CI disk, small enough that the
// copy (about 100-200 MiB/s in the lab) keeps the test within its timeout.
constexpr int kDataMiB = 768;

// A VM with a data disk and no NIC (the first VM owns the lab's guest address).
std::string BulkDomainXml(const std::string& name, const std::string& image) {
  return fmt::format(R"(<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{guest}/initrd.img</initrd>
    <cmdline>console=ttyS0 ftguest.workload=timer nohz=off</cmdline>
  </os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{image}'/><target dev='vda' bus='virtio'/></disk>
  </devices>
</domain>
)",
                     fmt::arg("name", name), fmt::arg("kernel", GuestKernel()),
                     fmt::arg("guest", GuestDir()), fmt::arg("image", image));
}

class LoopStallTest : public LibvirtLabTest {
 protected:
  void TearDown() override {
    // ftds first (their QEMUs die with them), then the store and the lab.
    pair_.reset();
    domain_.reset();
    store_.reset();
    LibvirtLabTest::TearDown();
  }

  std::unique_ptr<ClaimStore> store_;
  std::unique_ptr<LockstepPair> pair_;
  std::unique_ptr<DefinedDomain> domain_;
};

// What the sampler saw of the first VM while the second was being enabled.
struct Watch {
  int samples = 0;
  int primary_not_protected = 0, backup_not_replaying = 0, unreachable = 0;
  double max_lag_ms = 0;
  std::string first_bad;
};

TEST_F(LoopStallTest, BackupHostServesAnEnableWithADiskCopyWithoutStalling) {
  auto store = ClaimStore::Create();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  store_ = std::move(store).value();
  LockstepOptions options = LabPairOptions(*lab_);
  options.both_ways = true;                // A asks B to run the second VM's backup
  options.shared_storage = store_->dir();  // failover on: a missed heartbeat would go live
  options.heartbeat_timeout_ms = 1000;     // as in the issue's report
  auto pair = StartProtected(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  pair_ = std::move(pair).value();
  FtdInstance& a = pair_->primary();
  FtdInstance& b = pair_->backup();
  const std::string vm1 = pair_->vm();

  // The second VM's data disk: kDataMiB of non-zero data in a qcow2.
  std::string image = (dir_ / "bulk-vda.qcow2").string();
  auto made = RunCommand({"qemu-img", "create", "-q", "-f", "qcow2", image, "1G"}, 30s);
  ASSERT_EQ(made.exit_code, 0) << made.output;
  auto filled = RunCommand(
      {"qemu-io", "-f", "qcow2", "-c", fmt::format("write -P 0x5a 0 {}M", kDataMiB), image}, 120s);
  ASSERT_EQ(filled.exit_code, 0) << filled.output;
  ASSERT_GE(fs::file_size(image), uint64_t(kDataMiB) << 20);
  std::string vm2 = TestDomainPrefix() + "bulk";
  auto domain = DefinedDomain::Define(vm2, BulkDomainXml(vm2, image), dir_);
  ASSERT_TRUE(domain.ok()) << domain.status().ToString();
  domain_ = std::move(domain).value();

  // Both sides of the first VM, every 100 ms, while the second is enabled.
  std::atomic<bool> done{false};
  Watch watch;
  std::thread sampler([&] {
    while (!done) {
      SideView p = ProbeOf(a, vm1), q = ProbeOf(b, vm1);
      ++watch.samples;
      std::string bad;
      if (!p.reachable || !q.reachable) {
        ++watch.unreachable;
        bad = fmt::format("ftd did not answer status within 2 s (A {}, B {})", p.reachable,
                          q.reachable);
      } else {
        if (p.role != ProtoName(proto::FT_ROLE_PRIMARY) ||
            p.ft_state != ProtoName(proto::VM_FT_STATE_PROTECTED)) {
          ++watch.primary_not_protected;
          bad = "A: " + p.status.dump();
        }
        if (q.role != ProtoName(proto::FT_ROLE_BACKUP) ||
            q.ft_state != ProtoName(proto::VM_FT_STATE_REPLAYING)) {
          ++watch.backup_not_replaying;
          bad = "B: " + q.status.dump();
        }
        watch.max_lag_ms = std::max(watch.max_lag_ms, p.status.value("lag_ms", 0.0));
      }
      if (!bad.empty() && watch.first_bad.empty()) watch.first_bad = bad;
      std::this_thread::sleep_for(100ms);
    }
  });
  auto started = Clock::now();
  auto enabled = a.Ftctl({"enable", vm2}, 150s);
  double enable_s = std::chrono::duration<double>(Clock::now() - started).count();
  // The new pair comes up too (B's second backup connects), then a little longer.
  auto vm2_protected = Timeout("not checked");
  for (auto deadline = Clock::now() + 90s; Clock::now() < deadline;) {
    SideView v = ProbeOf(a, vm2);
    if (v.reachable && v.ft_state == ProtoName(proto::VM_FT_STATE_PROTECTED)) {
      vm2_protected = ft::Status::Ok();
      break;
    }
    std::this_thread::sleep_for(200ms);
  }
  std::this_thread::sleep_for(2s);
  done = true;
  sampler.join();
  std::printf(
      "enable with a %d MiB disk took %.1f s; the first VM over %d samples: max lag "
      "%.0f ms, %d not protected, %d backup not replaying, %d unanswered\n",
      kDataMiB, enable_s, watch.samples, watch.max_lag_ms, watch.primary_not_protected,
      watch.backup_not_replaying, watch.unreachable);

  ASSERT_EQ(enabled.exit_code, 0) << enabled.output << BothLogs(a, b);
  EXPECT_TRUE(WaitForFileContaining(b.ftd_log(), "replica of disk.vda verified", 5s))
      << BothLogs(a, b);
  EXPECT_TRUE(vm2_protected.ok()) << BothLogs(a, b);
  EXPECT_GT(watch.samples, 10);
  EXPECT_EQ(watch.unreachable + watch.primary_not_protected + watch.backup_not_replaying, 0)
      << watch.first_bad << BothLogs(a, b);
  EXPECT_LE(watch.max_lag_ms, options.max_lag_ms) << BothLogs(a, b);
  for (FtdInstance* side : {&a, &b}) {
    std::string log = ReadFile(side->ftd_log());
    for (const char* bad : {"no frame from", "running UNPROTECTED", "going live"}) {
      EXPECT_EQ(log.find(bad), std::string::npos)
          << side->node_name() << "'s log says '" << bad << "':\n"
          << BothLogs(a, b);
    }
    // The watchdog warns from 100 ms. On this 2-core machine both ftds, two QEMUs and a
    // 768 MiB write share the cores and the disk, and both ftds were seen late by 100-200 ms
    // at the same instant: the machine, not a handler. A handler that blocks (the replica's
    // fsync on the loop: 523 ms before it moved off) is over this bound, a third of the
    // heartbeat timeout.
    constexpr int kStallBoundMs = 300;
    int worst = 0;
    const std::string marker = "event loop stalled for ";
    for (size_t at = log.find(marker); at != std::string::npos; at = log.find(marker, at + 1)) {
      worst = std::max(worst, std::atoi(log.c_str() + at + marker.size()));
    }
    std::printf("%s: longest event-loop stall %d ms\n", side->node_name().c_str(), worst);
    EXPECT_LT(worst, kStallBoundMs)
        << side->node_name() << "'s event loop stalled for " << worst << " ms:\n"
        << BothLogs(a, b);
  }
}

}  // namespace
}  // namespace ft::testing
