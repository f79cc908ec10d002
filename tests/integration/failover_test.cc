// Failover in the network lab (design rule 3), real QEMU, two ftds on two lab hosts and a
// claim store both use. A client holds one TCP connection to the guest's stream and echo
// service throughout; it checks every line's sequence number and CRC and every echo, so a
// gap, a duplicate or a corrupt byte fails the test.
//
//  - Drill (x5, a fresh pair each time): host A's links are cut and its ftd and QEMU are
//    SIGKILLed; the backup on host B wins the next epoch, goes live from the end of the log
//    and the same connection carries on.
//  - Partition: the logging channel is cut with both hosts alive; exactly one copy runs
//    afterwards, the other halts, and the client is served by the one that runs. Never two
//    live copies, checked all along.
//  - Storage: the claim store is unreachable when the primary dies; the backup does not go
//    live until it is back.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "guest_client.h"
#include "lab.h"
#include "lab_pair.h"
#include "lockstep_pair.h"

namespace ft::testing {
namespace {

using namespace std::chrono_literals;

TEST(FailoverTest, DrillTheBackupGoesLiveAndTheClientsConnectionCarriesOn) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  auto lab = Lab::Create();
  SKIP_WITHOUT_LAB(lab);
  constexpr int kDrills = 5;
  for (int drill = 1; drill <= kDrills; ++drill) {
    SCOPED_TRACE(fmt::format("drill {}", drill));
    FailoverPair f;
    Status started = f.Start(**lab, 40);
    ASSERT_TRUE(started.ok()) << started.ToString();
    auto& p = *f.pair;
    auto& client = f.client;
    uint64_t seq_before = client.last_seq();

    auto killed_at = KillPrimaryHost(**lab, p);
    ASSERT_TRUE(killed_at.ok()) << killed_at.status().ToString();
    Status live = WaitUntilBackupLive(p, 30s);
    ASSERT_TRUE(live.ok()) << live.ToString();
    auto live_after =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - *killed_at);

    // The same connection: sequence and echoes go on from where they were, nothing lost,
    // nothing repeated, nothing corrupt (StreamClient checks every line).
    Status talked = Converse(client, 60);
    ASSERT_TRUE(talked.ok()) << talked.ToString() << "\nbackup ftd log:\n"
                             << ReadFile(p.backup().ftd_log());
    EXPECT_GE(client.last_seq(), seq_before + 60);

    auto st = p.Status(p.backup());
    ASSERT_TRUE(st.ok());
    const auto& nic = (*st)["nic"];
    const auto& fo = (*st)["failover"];
    EXPECT_EQ((*st)["role"], ProtoName(proto::FT_ROLE_PRIMARY));
    EXPECT_EQ(U64(*st, "epoch"), 2u) << "the new primary runs in the next epoch";
    EXPECT_EQ(fo["state"], ProtoName(proto::VM_FT_STATE_UNPROTECTED));
    EXPECT_FALSE(nic["tap"].get<std::string>().empty()) << "the new primary has no TAP";
    EXPECT_EQ(nic["outbound"], ProtoName(proto::OUTBOUND_OPEN));
    auto ms = [&](const char* key) { return (I64(fo, key) - I64(fo, "peer_lost_ns")) / 1000000; };
    std::printf(
        "drill %d: live %lld ms after the kill (caught up +%lld, claim won +%lld, end of log "
        "+%lld, snapshot +%lld, live +%lld ms after loss detected); client seq %llu -> %llu\n",
        drill, static_cast<long long>(live_after.count()),
        static_cast<long long>(ms("caught_up_ns")), static_cast<long long>(ms("claim_won_ns")),
        static_cast<long long>(ms("replay_ended_ns")),
        static_cast<long long>(ms("snapshot_saved_ns")), static_cast<long long>(ms("live_ns")),
        static_cast<unsigned long long>(seq_before),
        static_cast<unsigned long long>(client.last_seq()));
    // The new primary's console is the dead one's, replayed, then goes on live: equal up
    // to where the dead primary's log stopped reaching the backup (its last console bytes
    // may never have been logged), and longer afterwards.
    std::string a = p.primary_console(), b = p.backup_console();
    size_t common = static_cast<size_t>(
        std::mismatch(a.begin(), a.end(), b.begin(), b.end()).first - a.begin());
    EXPECT_GE(common + 4096, a.size()) << FirstDifference(a, b);
    EXPECT_GT(b.size(), common) << "the live guest printed nothing";
    client.Close();
    f.pair.reset();
    ASSERT_TRUE((*lab)->Run({"restore-host", "a"}).ok());
  }
}

TEST(FailoverTest, PartitionLeavesExactlyOneLiveCopyAndTheClientIsServed) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  auto lab = Lab::Create();
  SKIP_WITHOUT_LAB(lab);
  FailoverPair f;
  Status started = f.Start(**lab);
  ASSERT_TRUE(started.ok()) << started.ToString();
  auto& p = *f.pair;
  auto& client = f.client;

  ASSERT_TRUE((*lab)->Run({"cut-channel"}).ok());
  // Watch both sides until one is live and the other halted; never both live at once.
  auto deadline = Clock::now() + 30s;
  SideView a, b;
  int samples = 0, both_live = 0;
  bool settled = false;
  while (Clock::now() < deadline) {
    a = View(p, p.primary());
    b = View(p, p.backup());
    ++samples;
    // The primary's copy counts as live once its output flows again (unprotected); while it
    // arbitrates its gate holds everything.
    bool a_live = a.live && a.ft_state == ProtoName(proto::VM_FT_STATE_UNPROTECTED);
    bool b_live = b.live;
    if (a_live && b_live && both_live++ == 0) {
      ADD_FAILURE() << "two live copies\nprimary: " << a.status.dump()
                    << "\nbackup: " << b.status.dump() << "\nprimary ftd log:\n"
                    << ReadFile(p.primary().ftd_log()) << "\nbackup ftd log:\n"
                    << ReadFile(p.backup().ftd_log());
    }
    bool a_halted =
        a.ft_state == ProtoName(proto::VM_FT_STATE_HALTED) && a.status.value("qemu_pid", 0) == 0;
    bool b_halted = b.failover_state == ProtoName(proto::VM_FT_STATE_HALTED) &&
                    b.status.value("qemu_pid", 0) == 0;
    if ((a_live && b_halted) ||
        (b_live && b.ft_state == ProtoName(proto::VM_FT_STATE_UNPROTECTED) && a_halted)) {
      settled = true;
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(both_live, 0) << "two live copies";
  ASSERT_TRUE(settled) << "primary: " << a.status.dump() << "\nbackup: " << b.status.dump();
  std::printf("partition: %s is live, %s halted (%d samples, never two live)\n",
              a.live ? "the primary" : "the backup", a.live ? "the backup" : "the primary",
              samples);
  Status talked = Converse(client, 40);
  EXPECT_TRUE(talked.ok()) << talked.ToString();
  ASSERT_TRUE((*lab)->Run({"restore-channel"}).ok());
  // Healing the channel brings no second copy back.
  std::this_thread::sleep_for(2s);
  a = View(p, p.primary());
  b = View(p, p.backup());
  EXPECT_FALSE(a.live && a.ft_state == ProtoName(proto::VM_FT_STATE_UNPROTECTED) && b.live)
      << "two live copies after heal";
}

TEST(FailoverTest, NoCopyGoesLiveWhileTheSharedStorageIsUnreachable) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  auto lab = Lab::Create();
  SKIP_WITHOUT_LAB(lab);
  FailoverPair f;
  Status started = f.Start(**lab);
  ASSERT_TRUE(started.ok()) << started.ToString();
  auto& p = *f.pair;
  auto& client = f.client;
  auto& store = f.store;

  ASSERT_TRUE(store->TakeAway().ok());
  ASSERT_TRUE(KillPrimaryHost(**lab, p).ok());
  // Well past detection, catch-up and many claim retries: still not live.
  auto until = Clock::now() + 4s;
  SideView b;
  while (Clock::now() < until) {
    b = View(p, p.backup());
    ASSERT_FALSE(b.live) << "went live without winning the claim: " << b.status.dump();
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(b.failover_state, ProtoName(proto::VM_FT_STATE_ARBITRATING)) << b.status.dump();
  EXPECT_GE(b.status["failover"].value("claims_sent", 0), 2) << "claims are not retried";
  EXPECT_TRUE(b.status["nic"]["tap"].get<std::string>().empty()) << "took the network early";

  ASSERT_TRUE(store->GiveBack().ok());
  Status live = WaitUntilBackupLive(p, 30s);
  ASSERT_TRUE(live.ok()) << live.ToString();
  Status talked = Converse(client, 40, 60s);
  EXPECT_TRUE(talked.ok()) << talked.ToString();
  ASSERT_TRUE((*lab)->Run({"restore-host", "a"}).ok());
}

}  // namespace
}  // namespace ft::testing
