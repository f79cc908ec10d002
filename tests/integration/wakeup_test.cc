// The record-mode idle wakeup (replay/qemu-patches/replay-record-wake-idle-vcpu-on-event.patch)
// in the network lab: a tickless guest (no nohz=off) answers pings through a protected pair
// about as fast as the same guest without FT (under 1 ms added p50). Without the patch a
// recording QEMU takes an inbound frame only at the guest's next timer, which a tickless idle
// guest may not have armed for tens of ms. Both figures come from this one run on the same machine:
// the added p50, not the absolute RTT, is what is checked. FT_TEST_QEMU=<qemu-system-x86_64> runs
// it on another QEMU build (the test fails on one without the patch).
#include <gtest/gtest.h>

#include <cstdio>

#include <fmt/format.h>

#include "guest_client.h"
#include "lab.h"
#include "lab_pair.h"
#include "lockstep_pair.h"
#include "stats.h"

namespace ft::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kPings = 150;

// Waits for the guest's stream service (the guest has booted), pauses its stream so the
// guest idles, warms ARP, then measures.
Result<std::vector<double>> IdleGuestPings(Lab& lab) {
  StreamClient client;
  FT_RETURN_IF_ERROR(ConnectClient(lab, client));
  FT_RETURN_IF_ERROR(client.SendEcho("RATE 3600000"));
  FT_RETURN_IF_ERROR(client.AwaitEchoes(30s));
  (void)PingRtts(lab, 3);
  return PingRtts(lab, kPings);
}

TEST(WakeupTest, ATicklessGuestAnswersPingsThroughAProtectedPairWithoutWaitingForATimer) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  auto lab = Lab::Create();
  SKIP_WITHOUT_LAB(lab);
  std::printf("QEMU: %s\n", QemuBinary().c_str());
  GuestVmOptions vm;
  vm.workload = "none";
  vm.data_disk = false;
  vm.bridge = (*lab)->bridge();
  vm.lab_ip = (*lab)->vm_ip() + "/24";
  vm.extra_cmdline = "nohz=on";  // tickless, as the kernel's default; not nohz=off

  std::vector<double> plain;
  {
    auto ftd = FtdInstance::Create("wake-plain");
    ASSERT_TRUE(ftd.ok()) << ftd.status().ToString();
    ASSERT_TRUE((*ftd)->WriteConfig((*ftd)->GuestVmConfig(vm)).ok());
    ASSERT_TRUE((*ftd)->Start({}, {}, (*lab)->ns_a()).ok());
    auto rtts = IdleGuestPings(**lab);
    ASSERT_TRUE(rtts.ok()) << "without FT: " << rtts.status().ToString() << "\n"
                           << ReadFile((*ftd)->ftd_log());
    plain = *rtts;
  }

  LockstepOptions options;
  options.vm = vm;
  options.lab = lab->get();
  auto pair = StartProtected(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto& p = **pair;
  auto rtts = IdleGuestPings(**lab);
  ASSERT_TRUE(rtts.ok()) << "with FT: " << rtts.status().ToString() << "\n" << BothLogs(p);
  std::vector<double> ft = *rtts;
  auto primary = p.Status(p.primary());
  ASSERT_TRUE(primary.ok());
  EXPECT_EQ((*primary)["ft_state"], ProtoName(proto::VM_FT_STATE_PROTECTED)) << primary->dump();
  EXPECT_EQ((*primary)["nic"]["outbound"], ProtoName(proto::OUTBOUND_GATED)) << primary->dump();

  double added = Percentile(ft, 0.5) - Percentile(plain, 0.5);
  std::printf(
      "tickless guest, %d pings each: without FT p50 %.3f ms p99 %.3f ms | with FT p50 %.3f ms "
      "p99 %.3f ms | added p50 %+.3f ms\n",
      kPings, Percentile(plain, 0.5), Percentile(plain, 0.99), Percentile(ft, 0.5),
      Percentile(ft, 0.99), added);
  // Without the patch this guest's added p50 was +84.7 ms. With it, at 2eeb2cc on this 2-core
  // machine: +0.25 to +0.81 ms in 14 runs (2 of them in full clean-clone test runs); the rest
  // is output commit (the flush after the send, the channel, the backup's ack). Issue 18's
  // bound: an added p50 under 1 ms.
  EXPECT_LT(added, 1.0) << "a recording QEMU took inbound frames late (idle vCPU not woken), or "
                           "the output gate held replies longer than issue 18 allows";

  // The pings were replayed: the backup runs the log to its end, consoles identical.
  Status drained = p.StopPrimaryAndDrain(120s);
  ASSERT_TRUE(drained.ok()) << drained.ToString() << "\n" << ReadFile(p.backup().ftd_log());
  std::string a = p.primary_console(), b = p.backup_console();
  EXPECT_GT(a.size(), 1000u);
  EXPECT_TRUE(a == b) << FirstDifference(a, b);
}

}  // namespace
}  // namespace ft::testing
