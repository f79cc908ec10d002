// ftctl --json: protobuf's JSON printer's rendering of control.proto's and ftctl.proto's
// messages, with the keys and types docs/formats/control-socket.md documents.
#include "ftctl_json.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ft/proto/control.pb.h"
#include "ft/proto/ftctl.pb.h"

namespace ft::cli {
namespace {

using nlohmann::json;

json Printed(const google::protobuf::Message& message) {
  auto text = ToJson(message);
  EXPECT_TRUE(text.ok()) << text.status().message();
  if (!text.ok()) return json();
  auto parsed = json::parse(*text, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << *text;
  return parsed;
}

proto::VmStatus ProtectedPrimary() {
  proto::VmStatus vm;
  vm.set_name("web1");
  vm.set_state(proto::RUN_STATE_RUNNING);
  vm.set_mode("record");
  vm.set_qemu_pid(4242);
  vm.set_role(proto::FT_ROLE_PRIMARY);
  vm.set_ft_state(proto::VM_FT_STATE_PROTECTED);
  vm.set_epoch(3);
  vm.set_peer("hostB");
  vm.set_log_bytes(18446744073709551615ull);  // beyond a double's 53 bits: exact as a string
  vm.set_lag_ms(1.5);
  vm.set_last_ack_ms_ago(-1);
  auto* nic = vm.mutable_nic();
  nic->set_tap("ft-web1");
  nic->set_outbound(proto::OUTBOUND_GATED);
  nic->set_frames_out(200);
  auto* failover = vm.mutable_failover();
  failover->set_state(proto::VM_FT_STATE_PROTECTED);
  failover->set_claims_sent(2);
  failover->set_live_ns(123456789012345);
  return vm;
}

TEST(FtctlJsonTest, EveryVmStatusFieldIsAKeyNamedAsInTheProto) {
  proto::VmStatus vm = ProtectedPrimary();
  vm.mutable_reprotect()->set_phase("shipping");
  json j = Printed(vm);
  ASSERT_TRUE(j.is_object()) << j;
  const auto* d = proto::VmStatus::descriptor();
  EXPECT_EQ(j.size(), size_t(d->field_count())) << j.dump(2);
  for (int i = 0; i < d->field_count(); ++i) {
    EXPECT_TRUE(j.contains(d->field(i)->name())) << d->field(i)->name() << " in " << j.dump(2);
  }
}

TEST(FtctlJsonTest, EnumsAreTheirProtoValueNames) {
  json j = Printed(ProtectedPrimary());
  EXPECT_EQ(j["ft_state"], proto::VmFtState_Name(proto::VM_FT_STATE_PROTECTED));
  EXPECT_EQ(j["ft_state"], "VM_FT_STATE_PROTECTED");
  EXPECT_EQ(j["role"], proto::FtRole_Name(proto::FT_ROLE_PRIMARY));
  EXPECT_EQ(j["state"], proto::RunState_Name(proto::RUN_STATE_RUNNING));
  EXPECT_EQ(j["nic"]["outbound"], proto::Outbound_Name(proto::OUTBOUND_GATED));
  EXPECT_EQ(j["failover"]["state"], proto::VmFtState_Name(proto::VM_FT_STATE_PROTECTED));
  // 0 is printed too, by its name.
  EXPECT_EQ(Printed(proto::VmStatus())["ft_state"], "VM_FT_STATE_UNSPECIFIED");
}

TEST(FtctlJsonTest, SixtyFourBitIntegersAreStringsOthersNumbers) {
  json j = Printed(ProtectedPrimary());
  EXPECT_EQ(j["epoch"], "3");
  EXPECT_EQ(j["log_bytes"], "18446744073709551615");
  EXPECT_EQ(j["last_ack_ms_ago"], "-1");
  EXPECT_EQ(j["uptime_ms"], "0");
  EXPECT_EQ(j["nic"]["frames_out"], "200");
  EXPECT_EQ(j["failover"]["live_ns"], "123456789012345");
  EXPECT_EQ(j["qemu_pid"], 4242);  // int32
  EXPECT_EQ(j["failover"]["claims_sent"], 2);
  EXPECT_EQ(j["lag_ms"], 1.5);  // double
  EXPECT_EQ(j["nic"]["guest_connected"], false);
}

TEST(FtctlJsonTest, ZerosAndEmptyStringsArePrintedAbsentBlocksAreNot) {
  json j = Printed(ProtectedPrimary());
  EXPECT_EQ(j["last_error"], "");
  EXPECT_EQ(j["paced_ms"], "0");
  EXPECT_FALSE(j.contains("reprotect")) << j.dump(2);
  EXPECT_FALSE(j["failover"].contains("newest_claim")) << j.dump(2);
  EXPECT_TRUE(j["failover"].contains("store_id"));
}

TEST(FtctlJsonTest, SwitchoverReport) {
  proto::SwitchoverReport s;
  s.set_vm("web1");
  s.set_kind(proto::SWITCHOVER_KIND_DRILL);
  s.set_from_node("hostA");
  s.set_to_node("hostB");
  s.set_epoch(2);
  s.set_live_ms(812.5);
  s.set_log_bytes(4096);
  json j = Printed(s);
  EXPECT_EQ(j["kind"], proto::SwitchoverKind_Name(proto::SWITCHOVER_KIND_DRILL));
  EXPECT_EQ(j["epoch"], "2");
  EXPECT_EQ(j["log_bytes"], "4096");
  EXPECT_EQ(j["live_ms"], 812.5);
  EXPECT_EQ(j["protection_restored"], false);
  EXPECT_EQ(j["protection_note"], "");
  EXPECT_FALSE(j.contains("peer_steps")) << j.dump(2);

  s.mutable_peer_steps()->set_peer_lost_ns(1000000);
  s.mutable_peer_steps()->set_live_ns(5000000);
  j = Printed(s);
  EXPECT_EQ(j["peer_steps"]["peer_lost_ns"], "1000000");
  EXPECT_EQ(j["peer_steps"]["live_ns"], "5000000");
}

TEST(FtctlJsonTest, StatusIsTheNodeAndTheVm) {
  proto::FtctlVm out;
  out.set_node("hostA");
  *out.mutable_vm() = ProtectedPrimary();
  json j = Printed(out);
  EXPECT_EQ(j["node"], "hostA");
  EXPECT_EQ(j["vm"]["name"], "web1");
  EXPECT_EQ(j["warnings"], json::array());
  // disable that removed the VM: no "vm".
  out.clear_vm();
  EXPECT_FALSE(Printed(out).contains("vm"));
}

TEST(FtctlJsonTest, ListHasFtdsVmsAndEveryLibvirtDomain) {
  proto::ControlResponse response;
  response.set_node("hostA");
  *response.add_vms() = ProtectedPrimary();
  proto::FtctlList list;
  MakeList(response, {{"web1", "shut off"}, {"db1", "running"}}, "", &list);
  json j = Printed(list);
  EXPECT_EQ(j["node"], "hostA");
  ASSERT_EQ(j["vms"].size(), 1u) << j.dump(2);
  EXPECT_EQ(j["vms"][0]["name"], "web1");
  ASSERT_EQ(j["libvirt_domains"].size(), 2u) << j.dump(2);
  EXPECT_EQ(j["libvirt_domains"][0], json({{"name", "db1"}, {"state", "running"}, {"ft", "off"}}));
  EXPECT_EQ(j["libvirt_domains"][1],
            json({{"name", "web1"}, {"state", "shut off"}, {"ft", "on this ftd"}}));
  EXPECT_EQ(j["libvirt_error"], "");
}

TEST(FtctlJsonTest, ErrorAndStore) {
  proto::FtctlError error;
  error.set_error("cannot reach ftd at '/run/ftd/ftd.sock': is ftd running?");
  error.set_exit_code(3);
  EXPECT_EQ(Printed(error), json({{"error", error.error()}, {"exit_code", 3}}));
  proto::FtctlStore store;
  store.set_shared_storage("/mnt/ft");
  store.set_store_id("5f0c");
  EXPECT_EQ(Printed(store), json({{"shared_storage", "/mnt/ft"}, {"store_id", "5f0c"}}));
}

}  // namespace
}  // namespace ft::cli
