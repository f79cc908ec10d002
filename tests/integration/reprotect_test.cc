// Re-protection in the lab (real QEMU, real ftds, a qcow2 data disk): a VM that runs
// unprotected gets a new backup without its guest restarting.
//  - After a failover, the host that returns becomes the backup by itself (reprotect = auto):
//    its replayer starts from a snapshot of the running VM, replays the same console, and
//    takes over when the other host dies in turn. One client TCP connection (the guest's
//    record service, appending fsync'd records) and the guest's checked stream carry on
//    through both failovers; every acknowledged record is on the last host's disk, none torn.
//  - `ftctl enable` of a VM that runs unprotected gives it a backup: the guest's stream (its
//    sequence numbers and its TCP connection) goes on, nothing restarts.
//  - The peer dying while the snapshot ships leaves the VM running unprotected and nothing
//    of the attempt behind; the next attempt protects it.
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "guest_client.h"
#include "lab.h"
#include "lab_pair.h"
#include "lockstep_pair.h"

namespace ft::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

std::string Payload(uint64_t n) { return fmt::format("record-{}-{}", n, n * 2654435761u % 100000); }

// Appends records as fast as they are acknowledged, by whichever copy serves the guest.
class RecordWriter {
 public:
  explicit RecordWriter(RecordClient& records) : records_(records) {
    thread_ = std::thread([this] {
      for (uint64_t n = 1; !stop_ && n <= 1000000; ++n) {
        Status s = records_.Append(n, Payload(n), 30s);
        if (!s.ok()) {
          std::lock_guard lock(mu_);
          status_ = s.WithContext(fmt::format("record {}", n));
          failed_ = true;
          return;
        }
        acked_ = n;
      }
    });
  }
  ~RecordWriter() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t acked() const { return acked_; }
  bool failed() const { return failed_; }
  Status status() {
    std::lock_guard lock(mu_);
    return status_;
  }
  // Waits until `n` records are acknowledged in all (false on a writer error or timeout).
  bool WaitFor(uint64_t n, std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (acked_ < n && !failed_ && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
    return acked_ >= n;
  }

 private:
  RecordClient& records_;
  std::thread thread_;
  std::atomic<bool> stop_{false}, failed_{false};
  std::atomic<uint64_t> acked_{0};
  std::mutex mu_;
  Status status_;
};

// The VM's status in what `ftctl enable VM --json` printed (its "vm"), an empty object if none.
json EnabledVm(const CommandOutput& out) {
  json printed = json::parse(out.output, nullptr, false);
  if (!printed.is_object() || !printed.contains("vm")) return json::object();
  return printed["vm"];
}

// Polls until `side` reports the VM as the protected primary (its reprotect status, if any,
// is in the returned status), or fails with both logs.
Result<json> WaitUntilProtected(FtdInstance& side, FtdInstance& other, const std::string& vm,
                                std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  json last;
  while (Clock::now() < deadline) {
    auto st = side.StatusJson(vm);
    if (st.ok()) {
      last = *st;
      const json& rp = last.contains("reprotect") ? last["reprotect"] : json();
      bool attempt_over = !rp.is_object() || rp.value("phase", "") == "protected" ||
                          rp.value("phase", "") == "failed";
      if (last.value("role", "") == ProtoName(proto::FT_ROLE_PRIMARY) &&
          last.value("ft_state", "") == ProtoName(proto::VM_FT_STATE_PROTECTED) && attempt_over) {
        return last;
      }
    }
    std::this_thread::sleep_for(200ms);
  }
  return Timeout(fmt::format(
      "vm '{}' on {} was not protected again within {} s; last status "
      "{}{}",
      vm, side.node_name(), std::chrono::duration_cast<std::chrono::seconds>(timeout).count(),
      last.dump(2), BothLogs(side, other)));
}

// Both sides' status, QEMU's output and console ends, for failure messages.
std::string Diagnose(FtdInstance& a, FtdInstance& b, const std::string& vm) {
  std::string out;
  for (FtdInstance* side : {&a, &b}) {
    auto st = side->StatusJson(vm);
    out += fmt::format("\n---- {}: status ----\n{}\n", side->node_name(),
                       st.ok() ? st->dump(2) : st.status().ToString());
    std::string qemu = ReadFile(side->state_dir() + "/vms/" + vm + "/qemu.log");
    out += fmt::format("---- {}: qemu.log (end) ----\n{}\n", side->node_name(),
                       qemu.substr(qemu.size() > 3000 ? qemu.size() - 3000 : 0));
    std::string console = ReadFile(side->console_log(vm));
    out += fmt::format("---- {}: console (end) ----\n{}\n", side->node_name(),
                       console.substr(console.size() > 1500 ? console.size() - 1500 : 0));
  }
  return out + BothLogs(a, b);
}

TEST(ReprotectTest, ReturningHostBecomesTheBackupAndTakesOverTheNextFailover) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  auto lab = Lab::Create();
  SKIP_WITHOUT_LAB(lab);
  LockstepOptions options = LabPairOptions(**lab);
  options.vm.data_disk = true;
  options.reprotect = "auto";
  options.both_ways = true;
  FailoverPair f;
  Status started = f.Start(**lab, 30, &options);
  ASSERT_TRUE(started.ok()) << started.ToString();
  auto& p = *f.pair;
  FtdInstance& a = p.primary();
  FtdInstance& b = p.backup();

  RecordClient records;
  Status connected;
  ASSERT_TRUE(RunInNetns((*lab)->ns_client(), [&] {
                connected = records.Connect((*lab)->vm_ip(), 7001, 90s);
              }).ok());
  ASSERT_TRUE(connected.ok()) << connected.ToString() << BothLogs(p);
  RecordWriter writer(records);
  ASSERT_TRUE(writer.WaitFor(20, 60s)) << writer.status().ToString() << BothLogs(p);

  // 1. Host A dies; B goes live in epoch 2.
  auto killed = KillPrimaryHost(**lab, p);
  ASSERT_TRUE(killed.ok()) << killed.status().ToString();
  Status live = WaitUntilBackupLive(p, 30s);
  ASSERT_TRUE(live.ok()) << live.ToString();
  ASSERT_TRUE(Converse(f.client, 20).ok()) << BothLogs(p);
  uint64_t acked_before_return = writer.acked();
  ASSERT_TRUE(writer.WaitFor(acked_before_return + 10, 60s))
      << writer.status().ToString() << BothLogs(p);

  // 2. Host A returns with its ftd and its old config; B re-protects the VM by itself, A
  // the backup. The guest keeps running on B meanwhile.
  ASSERT_TRUE((*lab)->Run({"restore-host", "a"}).ok());
  size_t b_console_at_return = ReadFile(b.console_log(p.vm())).size();
  auto returned_at = Clock::now();
  ASSERT_TRUE(a.Restart(ReadFile(a.config_path())).ok()) << a.LogTail();
  auto reprotected = WaitUntilProtected(b, a, p.vm(), 180s);
  ASSERT_TRUE(reprotected.ok()) << reprotected.status().ToString();
  double protected_after_s = std::chrono::duration<double>(Clock::now() - returned_at).count();
  const json& rp = (*reprotected)["reprotect"];
  ASSERT_TRUE(rp.is_object()) << reprotected->dump(2);
  EXPECT_EQ(rp.value("phase", ""), "protected") << rp.dump();
  EXPECT_GT(U64(rp, "bytes_total"), 0u) << rp.dump();
  EXPECT_EQ(U64(rp, "bytes_sent"), U64(rp, "bytes_total"));
  EXPECT_GE(I64(rp, "pause_ms", -1), 0) << rp.dump();
  EXPECT_EQ(U64(*reprotected, "epoch"), 2u) << reprotected->dump(2);
  auto a_view = View(p, a);
  EXPECT_EQ(a_view.role, ProtoName(proto::FT_ROLE_BACKUP)) << a_view.status.dump(2);
  EXPECT_EQ(a_view.epoch, 2u) << a_view.status.dump(2);
  std::printf(
      "re-protected %.1f s after host A's ftd restarted: paused %lld ms, %.1f MiB "
      "shipped\n",
      protected_after_s, static_cast<long long>(I64(rp, "pause_ms", -1)),
      double(U64(rp, "bytes_total")) / (1 << 20));

  // The client's stream and records go on through the re-protection.
  ASSERT_TRUE(Converse(f.client, 30).ok()) << BothLogs(p);
  uint64_t acked_at_protect = writer.acked();
  ASSERT_TRUE(writer.WaitFor(acked_at_protect + 20, 60s))
      << writer.status().ToString() << Diagnose(a, b, p.vm());

  // 3. A's replayer started from the snapshot: its console is what B's guest wrote after it.
  std::string a_console;
  auto deadline = Clock::now() + 30s;
  while (Clock::now() < deadline) {
    a_console = ReadFile(a.console_log(p.vm()));
    if (a_console.size() > 200) break;
    std::this_thread::sleep_for(200ms);
  }
  std::string b_console = ReadFile(b.console_log(p.vm()));
  ASSERT_GT(a_console.size(), 200u) << "the new backup's replay wrote no console\n" << BothLogs(p);
  size_t at = b_console.find(a_console);
  ASSERT_NE(at, std::string::npos)
      << "the new backup's console is not the primary's:\n--- backup (A) ---\n"
      << a_console.substr(0, 2000) << "\n--- primary (B), from the return on ---\n"
      << b_console.substr(b_console_at_return, 2000);
  EXPECT_GE(at, b_console_at_return) << "the backup replays from before host A returned";
  std::printf("the new backup's console (%zu bytes) equals the primary's from byte %zu on\n",
              a_console.size(), at);

  // 4. Host B dies; A goes live in epoch 3 from the replay of the re-protected log.
  auto killed_b = KillHost(**lab, "b", b, p.vm());
  ASSERT_TRUE(killed_b.ok()) << killed_b.status().ToString();
  uint64_t acked_at_second_kill = writer.acked();
  Status live_a = WaitUntilLive(a, p.vm(), 30s);
  ASSERT_TRUE(live_a.ok()) << live_a.ToString();
  ASSERT_TRUE(writer.WaitFor(acked_at_second_kill + 30, 60s)) << writer.status().ToString() << "\n"
                                                              << a.LogTail();
  writer.Stop();
  ASSERT_FALSE(writer.failed()) << writer.status().ToString();
  Status served = Converse(f.client, 20);
  ASSERT_TRUE(served.ok()) << served.ToString() << "\n" << a.LogTail();
  auto a_live = View(p, a);
  EXPECT_EQ(a_live.role, ProtoName(proto::FT_ROLE_PRIMARY)) << a_live.status.dump(2);
  EXPECT_EQ(a_live.epoch, 3u) << a_live.status.dump(2);

  // 5. Every acknowledged record is on A's disk, in order, none torn.
  auto verify = records.VerifyAll(20s);
  ASSERT_TRUE(verify.ok()) << verify.status().ToString();
  EXPECT_EQ(verify->torn, 0u);
  EXPECT_EQ(verify->count, writer.acked());
  EXPECT_EQ(verify->last, writer.acked());
  std::printf(
      "records: %llu acknowledged through two failovers and a re-protection; host A's "
      "disk holds %llu, %llu torn; stream line %llu on the same connection\n",
      static_cast<unsigned long long>(writer.acked()),
      static_cast<unsigned long long>(verify->count), static_cast<unsigned long long>(verify->torn),
      static_cast<unsigned long long>(f.client.last_seq()));
  records.Close();
}

// A protected pair in the lab whose primary's host then turned FT off (`ftctl disable`): host
// A runs the VM unprotected and host B has no copy (reprotect = manual keeps it so).
class RunningUnprotectedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(GuestDir().empty()) << "guest not built";
    auto lab = Lab::Create();
    SKIP_WITHOUT_LAB(lab);
    lab_ = std::move(lab).value();
    Status started = f.Start(*lab_);
    ASSERT_TRUE(started.ok()) << started.ToString();
    auto off = f.pair->primary().Ftctl({"disable", f.pair->vm()}, 60s);
    ASSERT_EQ(off.exit_code, 0) << off.output << BothLogs(*f.pair);
  }

  std::unique_ptr<Lab> lab_;
  FailoverPair f;  // destroyed before the lab
};

TEST_F(RunningUnprotectedTest, EnableGivesItABackupWithoutARestart) {
  auto& p = *f.pair;
  FtdInstance& a = p.primary();
  FtdInstance& b = p.backup();
  ASSERT_TRUE(Converse(f.client, 20).ok()) << BothLogs(p);
  uint64_t seq_before = f.client.last_seq();
  auto before = a.StatusJson(p.vm());
  ASSERT_TRUE(before.ok());
  EXPECT_NE(before->value("ft_state", ""), ProtoName(proto::VM_FT_STATE_PROTECTED))
      << before->dump(2);

  // enable of the running VM: no libvirt domain needed, no restart of the guest.
  auto on = a.Ftctl({"enable", p.vm(), "--json"}, 300s);
  ASSERT_EQ(on.exit_code, 0) << on.output << BothLogs(p);
  json reply = EnabledVm(on);
  ASSERT_FALSE(reply.empty()) << on.output;
  EXPECT_EQ(reply.value("ft_state", ""), ProtoName(proto::VM_FT_STATE_PROTECTED)) << reply.dump(2);
  ASSERT_TRUE(reply["reprotect"].is_object()) << reply.dump(2);
  EXPECT_EQ(reply["reprotect"].value("phase", ""), "protected") << reply.dump(2);
  auto b_view = View(p, b);
  EXPECT_EQ(b_view.role, ProtoName(proto::FT_ROLE_BACKUP)) << b_view.status.dump(2);
  EXPECT_GT(b_view.qemu_pid, 0) << b_view.status.dump(2);

  // The same guest on the same TCP connection: its stream's sequence goes on.
  ASSERT_TRUE(Converse(f.client, 30).ok()) << BothLogs(p);
  EXPECT_GT(f.client.last_seq(), seq_before + 29);
  std::printf(
      "enable of the running VM: paused %lld ms, %.1f MiB shipped, protected after "
      "%.1f s; stream line %llu -> %llu on one connection\n",
      static_cast<long long>(I64(reply["reprotect"], "pause_ms", -1)),
      double(U64(reply["reprotect"], "bytes_total")) / (1 << 20),
      double(I64(reply["reprotect"], "elapsed_ms")) / 1000,
      static_cast<unsigned long long>(seq_before),
      static_cast<unsigned long long>(f.client.last_seq()));

  // The new backup keeps up: the primary's lag stays bounded and acks flow.
  std::this_thread::sleep_for(3s);
  auto now = a.StatusJson(p.vm());
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->value("ft_state", ""), ProtoName(proto::VM_FT_STATE_PROTECTED))
      << now->dump(2) << BothLogs(p);
  EXPECT_GT(U64(*now, "acked_bytes"), 0u) << now->dump(2);
}

// The peer's ftd dies while the snapshot is on its way: the VM runs on unprotected on A (it
// claims the next epoch before its gate opens), A keeps nothing of the attempt, and once
// the peer is back the next `ftctl enable` protects the VM from a clean start, leaving no
// partial replica behind on the peer.
TEST_F(RunningUnprotectedTest, APeerLostWhileShippingLeavesItRunningAndTheNextAttemptStartsClean) {
  auto& p = *f.pair;
  FtdInstance& a = p.primary();
  FtdInstance& b = p.backup();

  CommandOutput first;
  std::thread enabler([&] { first = a.Ftctl({"enable", p.vm(), "--json"}, 300s); });
  bool shipping = false;
  auto deadline = Clock::now() + 60s;
  while (!shipping && Clock::now() < deadline) {
    auto st = a.StatusJson(p.vm());
    shipping = st.ok() && (*st)["reprotect"].is_object() &&
               (*st)["reprotect"].value("phase", "") == "shipping";
    if (!shipping) std::this_thread::sleep_for(50ms);
  }
  if (shipping) {
    b.process()->Signal(SIGKILL);
    b.process()->WaitFor(10s);
  }
  enabler.join();
  ASSERT_TRUE(shipping) << "never saw the snapshot shipping: " << first.output << BothLogs(p);
  EXPECT_NE(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("was not re-protected"), std::string::npos) << first.output;

  // A runs on: unprotected once it won the next epoch, the same connection served.
  json st;
  deadline = Clock::now() + 30s;
  while (Clock::now() < deadline) {
    auto s = a.StatusJson(p.vm());
    if (s.ok()) st = *s;
    if (st.value("ft_state", "") == ProtoName(proto::VM_FT_STATE_OFF) ||
        st.value("ft_state", "") == ProtoName(proto::VM_FT_STATE_UNPROTECTED))
      break;
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_TRUE(st.value("ft_state", "") == ProtoName(proto::VM_FT_STATE_OFF) ||
              st.value("ft_state", "") == ProtoName(proto::VM_FT_STATE_UNPROTECTED))
      << st.dump(2) << "\n"
      << a.LogTail();
  EXPECT_GT(st.value("qemu_pid", 0), 0) << st.dump(2);
  ASSERT_TRUE(st["reprotect"].is_object()) << st.dump(2);
  EXPECT_EQ(st["reprotect"].value("phase", ""), "failed") << st.dump(2);
  EXPECT_FALSE(st["reprotect"].value("note", "").empty()) << st.dump(2);
  EXPECT_EQ(U64(st, "epoch"), 3u) << "the failed attempt must claim the next epoch first\n"
                                  << st.dump(2);
  ASSERT_TRUE(Converse(f.client, 20).ok()) << a.LogTail();
  std::string vm_state = a.state_dir() + "/vms/" + p.vm();
  EXPECT_FALSE(fs::exists(vm_state + "/reprotect-out")) << "the staging copy was left behind";
  for (const auto& e : fs::directory_iterator(a.run_dir() + "/" + p.vm())) {
    EXPECT_EQ(e.path().string().find(".keep"), std::string::npos) << e.path();
  }

  // The peer returns (its config still says backup: its copy is stale now); the next enable
  // replaces it with a backup from a fresh snapshot.
  ASSERT_TRUE(b.Restart(ReadFile(b.config_path())).ok()) << b.LogTail();
  // Until the peer's ftd listens again, enable answers that it is unreachable (exit 6).
  CommandOutput second;
  deadline = Clock::now() + 60s;
  do {
    if (second.exit_code == 6) std::this_thread::sleep_for(500ms);
    second = a.Ftctl({"enable", p.vm(), "--json"}, 300s);
  } while (second.exit_code == 6 && Clock::now() < deadline);
  ASSERT_EQ(second.exit_code, 0) << second.output << BothLogs(p);
  json reply = EnabledVm(second);
  EXPECT_EQ(reply.value("ft_state", ""), ProtoName(proto::VM_FT_STATE_PROTECTED)) << second.output;
  EXPECT_EQ(U64(reply, "epoch"), 3u) << second.output;
  for (const auto& e : fs::directory_iterator(b.state_dir() + "/vms/" + p.vm())) {
    EXPECT_EQ(e.path().string().find(".ftd-partial"), std::string::npos) << e.path();
  }
  ASSERT_TRUE(Converse(f.client, 20).ok()) << BothLogs(p);
}

}  // namespace
}  // namespace ft::testing
