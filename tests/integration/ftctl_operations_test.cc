// ftctl's operations against two real ftds in the network lab, a real libvirtd and real
// QEMU: a libvirt domain is protected with `ftctl enable` (the peer starts its backup), a
// client talks to it, and then it is handed over with `ftctl failover` or killed with
// `ftctl drill`; the same TCP connection carries on. Every error an operator meets first is
// checked with its exit code: an unknown domain, an incompatible one (the device named), FT
// already on, the peer unreachable, a VM in the wrong role. Needs root (lab, libvirtd).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ft/replay/process.h"
#include "guest_client.h"
#include "lab.h"
#include "lab_pair.h"
#include "libvirt_domains.h"
#include "libvirt_lab_test.h"

namespace ft::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

// The guest with a qcow2 data disk (a copy of the guest's template) as vda.
std::string DiskDomainXml(const std::string& name, Lab& lab, const std::string& image,
                          const std::string& format = "qcow2") {
  std::string xml = GuestDomainXml(name, lab);
  xml.replace(xml.find("<devices>"), 9,
              fmt::format("<devices>\n    <disk type='file' device='disk'><driver name='qemu' "
                          "type='{}'/><source file='{}'/><target dev='vda' bus='virtio'/></disk>",
                          format, image));
  return xml;
}

// What FT cannot protect: two vCPUs and virtio-net.
std::string IncompatibleDomainXml(const std::string& name, Lab& lab) {
  std::string xml = GuestDomainXml(name, lab);
  xml.replace(xml.find("<vcpu>1</vcpu>"), 14, "<vcpu>2</vcpu>");
  xml.replace(xml.find("<model type='e1000'/>"), 21, "<model type='virtio'/>");
  return xml;
}

json ParseJson(const CommandOutput& out) { return json::parse(out.output, nullptr, false); }

// Two ftds on lab hosts A and B with no VM in their config files, a shared claim store and a
// channel key: VMs arrive with `ftctl enable`.
class OperationsTest : public LibvirtLabTest {
 protected:
  void SetUp() override {
    LibvirtLabTest::SetUp();
    if (SetUpStopped()) return;
    auto store = ClaimStore::Create();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    auto a = FtdInstance::Create("hostA");
    auto b = FtdInstance::Create("hostB");
    ASSERT_TRUE(a.ok() && b.ok());
    a_ = std::move(a).value();
    b_ = std::move(b).value();
    ASSERT_TRUE(WriteNodeOnlyConfigs(*lab_, *a_, *b_, store_->dir()).ok());
    xml_dir_ = dir_;
    domain_name_ = TestDomainPrefix() + "web";
    auto domain =
        DefinedDomain::Define(domain_name_, GuestDomainXml(domain_name_, *lab_), xml_dir_);
    ASSERT_TRUE(domain.ok()) << domain.status().ToString();
    domain_ = std::move(domain).value();
  }

  void TearDown() override {
    // ftds first (their QEMUs die with them), then the lab they ran in.
    a_.reset();
    b_.reset();
    domain_.reset();
    store_.reset();
    LibvirtLabTest::TearDown();
  }

  void StartB() {
    ASSERT_TRUE(b_->Start({}, {}, lab_->ns_b()).ok());
    ASSERT_TRUE(WaitForFileContaining(b_->ftd_log(), "logging channel: listening", 30s))
        << ReadFile(b_->ftd_log());
  }
  void StartA() {
    ASSERT_TRUE(a_->Start({}, {}, lab_->ns_a()).ok());
    ASSERT_TRUE(WaitForFileContaining(a_->ftd_log(), "logging channel: listening", 30s))
        << ReadFile(a_->ftd_log());
  }

  // The domain's VmStatus from `ftctl status --json` on one side (an empty object if ftctl
  // failed).
  json Status(FtdInstance& side) {
    auto st = side.StatusJson(domain_name_);
    return st.ok() ? *st : json::object();
  }

  ft::Status WaitForState(FtdInstance& side, proto::VmFtState ft_state,
                          std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    std::string last;
    while (Clock::now() < deadline) {
      last = Status(side).value("ft_state", "");
      if (last == ProtoName(ft_state)) return ft::Status::Ok();
      std::this_thread::sleep_for(100ms);
    }
    return Timeout(fmt::format("'{}' on {} is '{}' after {} ms, expected '{}'", domain_name_,
                               side.node_name(), last, timeout.count(), ProtoName(ft_state)));
  }

  std::string Logs() {
    return "\nhost A's ftd:\n" + ReadFile(a_->ftd_log()) + "\nhost B's ftd:\n" +
           ReadFile(b_->ftd_log());
  }

  // Enables the domain on A and waits until A's copy is protected by B's.
  void EnableAndProtect() {
    auto enabled = a_->Ftctl({"enable", domain_name_}, 90s);
    ASSERT_EQ(enabled.exit_code, 0) << enabled.output << Logs();
    EXPECT_NE(enabled.output.find("FT is on for '" + domain_name_ + "'"), std::string::npos)
        << enabled.output;
    ASSERT_TRUE(WaitForState(*a_, proto::VM_FT_STATE_PROTECTED, 90s).ok()) << Logs();
    json backup = Status(*b_);
    EXPECT_EQ(backup.value("role", ""), ProtoName(proto::FT_ROLE_BACKUP)) << backup.dump();
    EXPECT_EQ(backup.value("peer", ""), "test-hostA") << backup.dump();
  }

  std::unique_ptr<ClaimStore> store_;
  std::unique_ptr<FtdInstance> a_, b_;
  fs::path xml_dir_;
  std::string domain_name_;
  std::unique_ptr<DefinedDomain> domain_;
};

TEST_F(OperationsTest, EnableRefusalsPlannedFailoverAndDisable) {
  StartA();
  // The peer's ftd is not running yet: nothing may change.
  auto unreachable = a_->Ftctl({"enable", domain_name_}, 60s);
  EXPECT_EQ(unreachable.exit_code, 6) << unreachable.output;
  EXPECT_NE(unreachable.output.find("not reachable"), std::string::npos) << unreachable.output;
  EXPECT_NE(unreachable.output.find("FT was not turned on for '" + domain_name_ + "'"),
            std::string::npos)
      << unreachable.output;
  EXPECT_EQ(a_->Ftctl({"status", domain_name_}).exit_code, 4);
  StartB();

  // Refusals before anything runs: an unknown domain, an incompatible one, bad flags.
  auto unknown = a_->Ftctl({"enable", TestDomainPrefix() + "nosuch"});
  EXPECT_EQ(unknown.exit_code, 4) << unknown.output;
  EXPECT_NE(unknown.output.find("no domain named '" + TestDomainPrefix() + "nosuch'"),
            std::string::npos)
      << unknown.output;
  std::string bad_name = TestDomainPrefix() + "smp";
  auto bad = DefinedDomain::Define(bad_name, IncompatibleDomainXml(bad_name, *lab_), xml_dir_);
  ASSERT_TRUE(bad.ok()) << bad.status().ToString();
  auto refused = a_->Ftctl({"enable", bad_name});
  EXPECT_EQ(refused.exit_code, 7) << refused.output;
  EXPECT_NE(refused.output.find("<vcpu>2</vcpu>"), std::string::npos) << refused.output;
  EXPECT_NE(refused.output.find("<model type='e1000'/>"), std::string::npos) << refused.output;
  EXPECT_EQ(a_->Ftctl({"enable"}).exit_code, 2);
  auto no_daemon = RunCommand(
      {FtctlBinary(), "--socket", a_->dir() + "/no-such.sock", "enable", domain_name_}, 30s);
  EXPECT_EQ(no_daemon.exit_code, 3) << no_daemon.output;
  EXPECT_EQ(a_->Ftctl({"drill", domain_name_, "--timeout", "0"}).exit_code, 2);
  EXPECT_EQ(a_->Ftctl({"failover", domain_name_}).exit_code, 4);

  EnableAndProtect();
  auto again = a_->Ftctl({"enable", domain_name_});
  EXPECT_EQ(again.exit_code, 5) << again.output;
  EXPECT_NE(again.output.find("already"), std::string::npos) << again.output;
  // On the backup's host the operations that need the primary say where to run them.
  auto wrong_side = b_->Ftctl({"failover", domain_name_});
  EXPECT_EQ(wrong_side.exit_code, 7) << wrong_side.output;
  EXPECT_NE(wrong_side.output.find("run it on 'test-hostA'"), std::string::npos)
      << wrong_side.output;

  // list: ftd's VM, its libvirt domain (FT on), and the domain FT is off for.
  auto list = ParseJson(a_->Ftctl({"list", "--json"}));
  ASSERT_FALSE(list.is_discarded());
  ASSERT_EQ(list["vms"].size(), 1u) << list.dump();
  EXPECT_EQ(list["vms"][0]["name"], domain_name_);
  EXPECT_EQ(list["vms"][0]["role"], ProtoName(proto::FT_ROLE_PRIMARY));
  bool listed_vm = false, listed_bad = false;
  for (const auto& d : list["libvirt_domains"]) {
    if (d["name"] == domain_name_) listed_vm = d["state"] == "shut off" && d["ft"] == "on this ftd";
    if (d["name"] == bad_name) listed_bad = d["ft"] == "off";
  }
  EXPECT_TRUE(listed_vm) << list.dump();
  EXPECT_TRUE(listed_bad) << list.dump();
  auto table = a_->Ftctl({"list"});
  EXPECT_NE(table.output.find("LIBVIRT"), std::string::npos) << table.output;

  StreamClient client;
  ASSERT_TRUE(ConnectClient(*lab_, client).ok()) << Logs();
  ASSERT_TRUE(Converse(client, 30).ok()) << Logs();
  uint64_t seq_before = client.last_seq();

  // Planned failover: nothing is lost, the same connection carries on from host B.
  auto failover = a_->Ftctl({"failover", domain_name_, "--json"}, 90s);
  ASSERT_EQ(failover.exit_code, 0) << failover.output << Logs();
  json report = ParseJson(failover);
  ASSERT_FALSE(report.is_discarded()) << failover.output;
  EXPECT_EQ(report["kind"], ProtoName(proto::SWITCHOVER_KIND_FAILOVER));
  EXPECT_EQ(report["from_node"], "test-hostA");
  EXPECT_EQ(report["to_node"], "test-hostB");
  EXPECT_EQ(U64(report, "epoch"), 2u);
  EXPECT_GT(report["live_ms"].get<double>(), 0);
  EXPECT_LT(report["live_ms"].get<double>(), 10000);
  EXPECT_GT(U64(report, "log_bytes"), 0u);
  std::printf("planned failover: drained %.0f ms, live on B %.0f ms after the request\n",
              report["drained_ms"].get<double>(), report["live_ms"].get<double>());
  ASSERT_TRUE(Converse(client, 40).ok()) << Logs();
  EXPECT_GT(client.last_seq(), seq_before + 30);

  json live = Status(*b_);
  EXPECT_EQ(live.value("role", ""), ProtoName(proto::FT_ROLE_PRIMARY)) << live.dump();
  EXPECT_EQ(U64(live, "epoch"), 2u) << live.dump();
  EXPECT_EQ(live["nic"].value("outbound", ""), ProtoName(proto::OUTBOUND_OPEN)) << live.dump();
  EXPECT_EQ(Status(*a_).value("ft_state", ""), ProtoName(proto::VM_FT_STATE_HALTED));

  // Turning FT off: the halted copy on A goes; B's copy runs on, unprotected.
  auto off_a = a_->Ftctl({"disable", domain_name_});
  EXPECT_EQ(off_a.exit_code, 0) << off_a.output << Logs();
  EXPECT_EQ(a_->Ftctl({"status", domain_name_}).exit_code, 4);
  auto off_b = b_->Ftctl({"disable", domain_name_});
  EXPECT_EQ(off_b.exit_code, 0) << off_b.output << Logs();
  EXPECT_NE(off_b.output.find("runs on test-hostB unprotected"), std::string::npos) << off_b.output;
  ASSERT_TRUE(Converse(client, 20).ok()) << Logs();
  EXPECT_EQ(a_->Ftctl({"disable", domain_name_}).exit_code, 4);
}

TEST_F(OperationsTest, DrillKillsThePrimaryAndReportsTheTakeover) {
  StartB();
  StartA();
  EnableAndProtect();
  StreamClient client;
  ASSERT_TRUE(ConnectClient(*lab_, client).ok()) << Logs();
  ASSERT_TRUE(Converse(client, 30).ok()) << Logs();
  int qemu_pid = Status(*a_).value("qemu_pid", 0);
  ASSERT_GT(qemu_pid, 0);

  auto drill = a_->Ftctl({"drill", domain_name_, "--json"}, 90s);
  ASSERT_EQ(drill.exit_code, 0) << drill.output << Logs();
  json report = ParseJson(drill);
  ASSERT_FALSE(report.is_discarded()) << drill.output;
  EXPECT_EQ(report["kind"], ProtoName(proto::SWITCHOVER_KIND_DRILL));
  EXPECT_EQ(report["to_node"], "test-hostB");
  EXPECT_EQ(U64(report, "epoch"), 2u);
  EXPECT_FALSE(report["protection_restored"].get<bool>());
  EXPECT_NE(report["protection_note"].get<std::string>().find("unprotected"), std::string::npos);
  // Host B noticed by its heartbeat timeout (1 s), not by a closed connection.
  double live_ms = report["live_ms"].get<double>();
  const json& steps = report["peer_steps"];
  double on_b = double(I64(steps, "live_ns") - I64(steps, "peer_lost_ns")) / 1e6;
  EXPECT_GE(live_ms - on_b, 900) << report.dump(2);
  EXPECT_LT(live_ms, 5000) << report.dump(2);
  std::printf("drill: live on B %.0f ms after the kill (detection %.0f ms, B's go-live %.0f ms)\n",
              live_ms, live_ms - on_b, on_b);
  EXPECT_NE(kill(qemu_pid, 0), 0) << "the drill left the primary's QEMU running";

  auto text = a_->Ftctl({"status", domain_name_});
  EXPECT_NE(text.output.find("killed by a failover drill"), std::string::npos) << text.output;
  ASSERT_TRUE(Converse(client, 40).ok()) << Logs();
  json live = Status(*b_);
  EXPECT_EQ(live.value("role", ""), ProtoName(proto::FT_ROLE_PRIMARY)) << live.dump();
  // A second drill has nothing to take over.
  auto second = a_->Ftctl({"drill", domain_name_});
  EXPECT_EQ(second.exit_code, 7) << second.output;
}

// enable copies the VM's disk to the peer, which verifies it before its backup starts; a raw
// disk and a disk another process holds are refused; disable removes the peer's replica.
TEST_F(OperationsTest, EnableCreatesTheBackupsDiskReplica) {
  StartB();
  StartA();
  std::string image = (xml_dir_ / "web-vda.qcow2").string();
  ASSERT_TRUE(fs::copy_file(GuestDir() + "/data.qcow2", image));
  std::string name = TestDomainPrefix() + "db";
  auto domain = DefinedDomain::Define(name, DiskDomainXml(name, *lab_, image), xml_dir_);
  ASSERT_TRUE(domain.ok()) << domain.status().ToString();

  // Held open by another process (as a QEMU would): refused, naming the image.
  {
    auto holder = replay::ChildProcess::Spawn({"qemu-io", "-c", "sleep 20000", image}, {});
    ASSERT_TRUE(holder.ok());
    std::this_thread::sleep_for(500ms);
    auto in_use = a_->Ftctl({"enable", name}, 60s);
    EXPECT_EQ(in_use.exit_code, 7) << in_use.output;
    EXPECT_NE(in_use.output.find("'" + image + "' is in use by another process"), std::string::npos)
        << in_use.output;
    (*holder)->Terminate(2s);
  }
  EXPECT_EQ(a_->Ftctl({"status", name}).exit_code, 4);

  auto enabled = a_->Ftctl({"enable", name}, 120s);
  ASSERT_EQ(enabled.exit_code, 0) << enabled.output << Logs();
  std::string replica = b_->state_dir() + "/vms/" + name + "/replica-vda.qcow2";
  EXPECT_TRUE(fs::exists(replica));
  EXPECT_TRUE(WaitForFileContaining(a_->ftd_log(), "disk.vda: replica created on the peer", 5s));
  EXPECT_TRUE(WaitForFileContaining(b_->ftd_log(), "replica of disk.vda verified", 5s));
  std::string saved = domain_name_;
  domain_name_ = name;  // Status() and WaitForState() look at this VM now
  ASSERT_TRUE(WaitForState(*a_, proto::VM_FT_STATE_PROTECTED, 90s).ok()) << Logs();
  json backup = Status(*b_);
  EXPECT_EQ(backup.value("role", ""), ProtoName(proto::FT_ROLE_BACKUP)) << backup.dump();

  // The guest writes to it through lockstep.
  RecordClient records;
  ft::Status connected;
  ASSERT_TRUE(RunInNetns(lab_->ns_client(), [&] {
                connected = records.Connect(lab_->vm_ip(), 7001, 90s);
              }).ok());
  ASSERT_TRUE(connected.ok()) << connected.ToString();
  for (uint64_t n = 1; n <= 10; ++n) {
    ASSERT_TRUE(records.Append(n, fmt::format("row-{}", n), 20s).ok()) << n;
  }
  records.Close();

  auto off = a_->Ftctl({"disable", name});
  EXPECT_EQ(off.exit_code, 0) << off.output << Logs();
  EXPECT_FALSE(fs::exists(replica)) << "the backup's replica outlived FT";
  domain_name_ = saved;

  // A raw disk cannot hold the snapshot a backup goes live from.
  std::string raw_name = TestDomainPrefix() + "raw";
  std::string raw = (xml_dir_ / "raw.img").string();
  std::ofstream(raw).close();
  fs::resize_file(raw, 1 << 20);
  auto raw_domain =
      DefinedDomain::Define(raw_name, DiskDomainXml(raw_name, *lab_, raw, "raw"), xml_dir_);
  ASSERT_TRUE(raw_domain.ok()) << raw_domain.status().ToString();
  auto refused = a_->Ftctl({"enable", raw_name});
  EXPECT_EQ(refused.exit_code, 7) << refused.output;
  EXPECT_NE(refused.output.find("must be qcow2"), std::string::npos) << refused.output;
}

}  // namespace
}  // namespace ft::testing
