// VM disks in lockstep (real QEMU, a qcow2 data disk through blkreplay on each host): the
// guest's record service appends numbered, checksummed records with fsync and acknowledges
// each over TCP.
//  - After a clean stop, made while the guest appends, the two replicas hold the same
//    guest-visible bytes (qemu-img compare).
//  - Through a failover drill (host A's links cut, its ftd and QEMU SIGKILLed) every record
//    the client saw acknowledged is on the new primary's disk, none is torn, and the new
//    primary keeps appending on the same TCP connection.
#include <atomic>
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

std::string DataDisk(FtdInstance& side, const std::string& vm) {
  return fmt::format("{}/{}-data.qcow2", side.dir(), vm);
}

std::string Payload(uint64_t n) { return fmt::format("record-{}-{}", n, n * 2654435761u % 100000); }

TEST(DiskTest, ReplicasAreIdenticalAfterACleanRun) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  LockstepOptions options;
  options.vm.workload = "chaos";
  options.vm.records_port = FreeLoopbackPort();
  auto pair = LockstepPair::Start(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto& p = **pair;
  ASSERT_TRUE(p.WaitForFtState(p.primary(), proto::VM_FT_STATE_PROTECTED, 60s).ok())
      << ReadFile(p.primary().ftd_log());
  RecordClient records;
  ASSERT_TRUE(records.Connect("127.0.0.1", options.vm.records_port, 90s).ok())
      << ReadFile(p.primary().console_log(p.vm()));
  for (uint64_t n = 1; n <= 60; ++n) {
    ASSERT_TRUE(records.Append(n, Payload(n), 20s).ok()) << "record " << n;
  }
  auto verify = records.VerifyAll(20s);
  ASSERT_TRUE(verify.ok()) << verify.status().ToString();
  EXPECT_EQ(verify->count, 60u);
  EXPECT_EQ(verify->torn, 0u);

  // ftd stops while the guest goes on appending, so a disk request is often in flight when
  // QEMU quits: both QEMUs must still exit (a replayer at the end of its log, a recorder
  // asked to quit) and flush their images. The writer ends when the guest is gone.
  std::atomic<uint64_t> appended{60};
  std::thread writer([&] {
    for (uint64_t n = 61; n <= 100000; ++n) {
      if (!records.Append(n, Payload(n), 10s).ok()) return;
      appended = n;
    }
  });
  // Stop once the writer is under way (a loaded machine can take seconds for an append),
  // and has been appending for a while.
  auto under_way = Clock::now() + 60s;
  while (appended.load() == 60 && Clock::now() < under_way) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(1500ms);
  Status drained = p.StopPrimaryAndDrain(120s);
  writer.join();
  records.Close();
  EXPECT_GT(appended.load(), 60u) << "the guest appended nothing while ftd stopped";
  ASSERT_TRUE(drained.ok()) << drained.ToString() << "\nprimary:\n"
                            << ReadFile(p.primary().ftd_log()) << "\nbackup:\n"
                            << ReadFile(p.backup().ftd_log());
  // Neither QEMU needed a signal to end: a killed one leaves its image unflushed. And the
  // replayer's own exit at the log's end is reported as the end it is, not as a failure.
  for (FtdInstance* side : {&p.primary(), &p.backup()}) {
    std::string log = ReadFile(side->ftd_log());
    EXPECT_EQ(log.find("did not quit"), std::string::npos) << log;
    EXPECT_EQ(log.find("unexpectedly"), std::string::npos) << log;
  }
  std::string a = DataDisk(p.primary(), p.vm()), b = DataDisk(p.backup(), p.vm());
  auto compare = RunCommand({"qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", a, b}, 60s);
  EXPECT_EQ(compare.exit_code, 0) << compare.output;
  EXPECT_NE(compare.output.find("Images are identical"), std::string::npos) << compare.output;
  // The same as checksums of what the guest sees: each image converted to raw, hashed.
  auto sums = RunCommand(
      {"sh", "-c",
       fmt::format("qemu-img convert -O raw {0} {0}.raw && qemu-img convert -O raw {1} {1}.raw "
                   "&& sha256sum {0}.raw {1}.raw; rm -f {0}.raw {1}.raw",
                   a, b)},
      60s);
  std::printf("guest-visible sha256 of the replicas:\n%s", sums.output.c_str());
  auto lines = sums.output.find('\n');
  ASSERT_NE(lines, std::string::npos);
  EXPECT_EQ(sums.output.substr(0, 64), sums.output.substr(lines + 1, 64)) << sums.output;
}

// A backup whose replica is not the primary's image is refused before any log flows: its
// replay would diverge at the first read of a block that differs.
TEST(DiskTest, BackupWithADifferentReplicaIsRefused) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  LockstepOptions options;
  options.vm.workload = "chaos";
  options.prepare_backup = [](FtdInstance& backup) -> Status {
    auto out = RunCommand(
        {"qemu-io", "-f", "qcow2", "-c", "write -P 0x55 1M 4k", DataDisk(backup, "web1")}, 30s);
    if (out.exit_code != 0) return Internal("qemu-io write failed: " + out.output);
    return Status::Ok();
  };
  auto pair = LockstepPair::Start(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto& p = **pair;
  ASSERT_TRUE(WaitForFileContaining(p.primary().ftd_log(), "disk replicas differ", 60s))
      << ReadFile(p.primary().ftd_log());
  EXPECT_TRUE(WaitForFileContaining(p.backup().ftd_log(), "disk replicas differ", 5s))
      << ReadFile(p.backup().ftd_log());
  auto st = p.Status(p.primary());
  ASSERT_TRUE(st.ok());
  EXPECT_EQ((*st)["ft_state"], ProtoName(proto::VM_FT_STATE_WAITING_FOR_BACKUP)) << st->dump();
  auto backup = p.Status(p.backup());
  ASSERT_TRUE(backup.ok());
  EXPECT_EQ((*backup)["qemu_pid"], 0) << "no replayer may start on a differing replica";
}

// Appends records through a failover drill: the writer appends as fast as acknowledgements
// come, host A dies, and the same TCP connection goes on with host B. With
// `quiet_at_kill`, the writer pauses once record 30 is acknowledged and A dies 300 ms later,
// with no disk request in flight; otherwise A dies in the middle of the stream.
void RecordsThroughADrill(bool quiet_at_kill) {
  auto lab = Lab::Create();
  SKIP_WITHOUT_LAB(lab);
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  auto store = ClaimStore::Create();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  LockstepOptions options = LabPairOptions(**lab);
  options.vm.data_disk = true;
  options.shared_storage = (*store)->dir();
  auto pair = StartProtected(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto& p = **pair;

  RecordClient records;
  Status connected;
  ASSERT_TRUE(RunInNetns((*lab)->ns_client(), [&] {
                connected = records.Connect((*lab)->vm_ip(), 7001, 90s);
              }).ok());
  ASSERT_TRUE(connected.ok()) << connected.ToString() << ReadFile(p.primary().console_log(p.vm()));

  // Each append waits (bounded) until acknowledged, by whichever copy serves the guest then.
  std::atomic<uint64_t> acked{0};
  std::atomic<bool> stop{false}, paused{false}, resume{!quiet_at_kill};
  Status writer_status;
  std::thread writer([&] {
    for (uint64_t n = 1; !stop && n <= 100000; ++n) {
      if (n == 31 && !resume) {
        paused = true;
        while (!resume && !stop) std::this_thread::sleep_for(5ms);
      }
      Status s = records.Append(n, Payload(n), 20s);
      if (!s.ok()) {
        writer_status = s.WithContext(fmt::format("record {}", n));
        return;
      }
      acked = n;
    }
  });
  auto deadline = Clock::now() + 60s;
  while (acked < 30 && Clock::now() < deadline && writer_status.ok()) {
    std::this_thread::sleep_for(20ms);
  }
  if (quiet_at_kill) std::this_thread::sleep_for(300ms);
  if (acked < 30 || (quiet_at_kill && !paused)) {
    stop = true;
    writer.join();
    FAIL() << "the writer did not get 30 records acknowledged: " << writer_status.ToString();
  }
  auto cut = KillPrimaryHost(**lab, p);
  ASSERT_TRUE(cut.ok()) << cut.status().ToString();
  uint64_t acked_at_kill = acked;
  resume = true;
  // The new primary keeps appending: 30 more acknowledged records after the kill.
  deadline = Clock::now() + 60s;
  while (acked < acked_at_kill + 30 && Clock::now() < deadline && writer_status.ok()) {
    std::this_thread::sleep_for(20ms);
  }
  stop = true;
  writer.join();
  ASSERT_TRUE(writer_status.ok()) << writer_status.ToString() << "\n"
                                  << ReadFile(p.backup().ftd_log());
  ASSERT_GE(acked.load(), acked_at_kill + 30);
  auto live = p.Status(p.backup());
  ASSERT_TRUE(live.ok());
  EXPECT_EQ((*live)["role"], ProtoName(proto::FT_ROLE_PRIMARY)) << live->dump();
  EXPECT_EQ(U64(*live, "epoch"), 2u) << live->dump();

  // Every acknowledged record is on the new primary's disk, in order, none torn.
  auto verify = records.VerifyAll(20s);
  ASSERT_TRUE(verify.ok()) << verify.status().ToString();
  EXPECT_EQ(verify->torn, 0u);
  EXPECT_EQ(verify->count, acked.load());
  EXPECT_EQ(verify->last, acked.load());
  std::printf(
      "records: %llu acknowledged before host A died, %llu in all; the new primary's "
      "disk holds %llu, %llu torn\n",
      static_cast<unsigned long long>(acked_at_kill), static_cast<unsigned long long>(acked.load()),
      static_cast<unsigned long long>(verify->count),
      static_cast<unsigned long long>(verify->torn));
  records.Close();
}

TEST(DiskTest, AcknowledgedRecordsSurviveAFailoverDrill) { RecordsThroughADrill(true); }

// Host A dies in the middle of the stream, typically with a guest disk request in flight:
// the backup's replayer ends the log with that request's completion still queued. Before
// replay/qemu-patches/replay-flush-events-for-go-live-savevm.patch QEMU refused the
// go-live snapshot then ("Record/replay does not allow making snapshot right now") and the
// backup halted, leaving no copy running (CI, 2026-11-24).
TEST(DiskTest, FailoverWithADiskRequestInFlight) { RecordsThroughADrill(false); }

}  // namespace
}  // namespace ft::testing
