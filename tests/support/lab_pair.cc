#include "lab_pair.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <regex>
#include <thread>

#include <fmt/format.h>

#include "ft/daemon/control_socket.h"
#include "ft/proto/control.pb.h"
#include "ftctl_json.h"

namespace ft::testing {

using namespace std::chrono_literals;

LockstepOptions LabPairOptions(Lab& lab) {
  LockstepOptions options;
  options.vm.workload = "timer,chaos";
  options.vm.data_disk = false;
  options.lab = &lab;
  return options;
}

Result<std::unique_ptr<LockstepPair>> StartProtected(const LockstepOptions& options) {
  FT_ASSIGN_OR_RETURN(auto pair, LockstepPair::Start(options));
  Status protected_ = pair->WaitForFtState(pair->primary(), proto::VM_FT_STATE_PROTECTED, 60s);
  if (!protected_.ok()) {
    return protected_.WithContext("primary's ftd log:\n" + ReadFile(pair->primary().ftd_log()));
  }
  return pair;
}

Status ConnectClient(Lab& lab, StreamClient& client) {
  Status connected;
  FT_RETURN_IF_ERROR(
      RunInNetns(lab.ns_client(), [&] { connected = client.Connect(lab.vm_ip(), 7000, 90s); }));
  return connected;
}

Result<std::vector<double>> PingRtts(Lab& lab, int count) {
  auto out = RunCommand({"ip", "netns", "exec", lab.ns_client(), "ping", "-c",
                         std::to_string(count), "-i", "0.02", "-W", "1", lab.vm_ip()},
                        120s);
  std::vector<double> rtts;
  static const std::regex kTime("time=([0-9.]+) ms");
  for (std::sregex_iterator it(out.output.begin(), out.output.end(), kTime), end; it != end; ++it) {
    rtts.push_back(std::stod((*it)[1]));
  }
  if (rtts.size() < static_cast<size_t>(count) * 9 / 10) {
    return Unavailable(fmt::format("ping answered {} of {}: {}", rtts.size(), count, out.output));
  }
  return rtts;
}

Status Converse(StreamClient& client, int lines, std::chrono::milliseconds timeout) {
  for (int i = 0; i < lines / 10; ++i) {
    FT_RETURN_IF_ERROR(client.SendEcho(fmt::format("echo-{}", client.stream_lines())));
    FT_RETURN_IF_ERROR(client.ReadStream(10, timeout));
  }
  return client.AwaitEchoes(timeout);
}

Result<std::unique_ptr<ClaimStore>> ClaimStore::Create() {
  static std::atomic<int> counter{0};
  std::string dir = fmt::format("/tmp/ftd-test-claims-{}-{}", getpid(), counter++);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) return Internal(fmt::format("cannot create '{}': {}", dir, ec.message()));
  std::unique_ptr<ClaimStore> store(new ClaimStore(dir));
  auto out = RunCommand({FtctlBinary(), "init-storage", dir}, 10s);
  if (out.exit_code != 0) return Internal("ftctl init-storage failed: " + out.output);
  return store;
}

ClaimStore::~ClaimStore() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  std::filesystem::remove_all(dir_ + ".away", ec);
}

Status ClaimStore::TakeAway() {
  std::error_code ec;
  std::filesystem::rename(dir_, dir_ + ".away", ec);
  return ec ? Internal("cannot move the claim store away: " + ec.message()) : Status::Ok();
}

Status ClaimStore::GiveBack() {
  std::error_code ec;
  std::filesystem::rename(dir_ + ".away", dir_, ec);
  return ec ? Internal("cannot bring the claim store back: " + ec.message()) : Status::Ok();
}

Status WriteNodeOnlyConfigs(Lab& lab, FtdInstance& a, FtdInstance& b,
                            const std::string& shared_storage, const std::string& reprotect) {
  constexpr uint16_t kChannelPort = 7400;  // each lab host is a fresh namespace: it is free
  std::string at_a = fmt::format("{}:{}", lab.Get("FTLAB_A_FT_IP"), kChannelPort);
  std::string at_b = fmt::format("{}:{}", lab.b_channel_ip(), kChannelPort);
  auto node = [&](FtdInstance& side, const std::string& listen, const std::string& peer) {
    std::string text = fmt::format(
        "[node]\nname = {}\nstate_dir = {}\nrun_dir = {}\nlog_level = debug\nqemu = {}\n"
        "channel_key_file = {}\nlisten = {}\npeer = {}\nheartbeat_interval_ms = 100\n"
        "heartbeat_timeout_ms = 1000\n",
        side.node_name(), side.state_dir(), side.run_dir(), QemuBinary(), side.channel_key_path(),
        listen, peer);
    if (!shared_storage.empty()) text += "shared_storage = " + shared_storage + "\n";
    if (!reprotect.empty()) text += "reprotect = " + reprotect + "\n";
    return text;
  };
  for (FtdInstance* side : {&a, &b}) FT_RETURN_IF_ERROR(side->WriteChannelKey());
  FT_RETURN_IF_ERROR(a.WriteConfig(node(a, at_a, at_b)));
  return b.WriteConfig(node(b, at_b, at_a));
}

Status FailoverPair::Start(Lab& lab, int lines, const LockstepOptions* options) {
  FT_ASSIGN_OR_RETURN(store, ClaimStore::Create());
  LockstepOptions o = options ? *options : LabPairOptions(lab);
  o.shared_storage = store->dir();
  FT_ASSIGN_OR_RETURN(pair, StartProtected(o));
  Status talked = ConnectClient(lab, client);
  if (talked.ok()) talked = Converse(client, lines);
  if (talked.ok()) return talked;
  return Status(talked.code(), talked.message() + BothLogs(*pair));
}

Result<Clock::time_point> KillHost(Lab& lab, const std::string& host, FtdInstance& side,
                                   const std::string& vm) {
  if (!side.process()) return FailedPrecondition("no ftd was started on host " + host);
  auto st = side.StatusJson(vm);
  int qemu = st.ok() ? st->value("qemu_pid", 0) : 0;
  FT_RETURN_IF_ERROR(lab.Run({"cut-host", host}));
  auto cut_at = Clock::now();
  side.process()->Signal(SIGKILL);
  if (qemu > 0) kill(qemu, SIGKILL);  // ftd's child; its PDEATHSIG would do it too
  side.process()->WaitFor(10s);
  return cut_at;
}

Result<Clock::time_point> KillPrimaryHost(Lab& lab, LockstepPair& pair) {
  return KillHost(lab, "a", pair.primary(), pair.vm());
}

namespace {

// A SideView of `status`, a VmStatus as ftctl prints it.
SideView ViewOfJson(nlohmann::json status) {
  SideView v;
  v.reachable = true;
  v.status = std::move(status);
  const auto& st = v.status;
  v.role = st.value("role", "");
  v.ft_state = st.value("ft_state", "");
  v.ft_note = st.value("ft_note", "");
  v.epoch = U64(st, "epoch");
  v.qemu_pid = st.value("qemu_pid", 0);
  const auto& failover = Block(st, "failover");
  if (failover.is_object()) v.failover_state = failover.value("state", "");
  bool running = v.qemu_pid != 0;
  v.live = v.role == ProtoName(proto::FT_ROLE_PRIMARY) && running &&
           v.ft_state != ProtoName(proto::VM_FT_STATE_HALTED);
  const auto& nic = Block(st, "nic");
  v.gate_open =
      running && nic.is_object() && nic.value("outbound", "") == ProtoName(proto::OUTBOUND_OPEN);
  return v;
}

}  // namespace

SideView ViewOf(FtdInstance& side, const std::string& vm) {
  auto st = side.StatusJson(vm);
  if (!st.ok()) return SideView();
  return ViewOfJson(std::move(*st));
}

SideView ProbeOf(FtdInstance& side, const std::string& vm) {
  SideView v;
  proto::ControlRequest request;
  request.set_version(daemon::kControlVersion);
  request.mutable_status()->set_vm(vm);
  auto reply = daemon::CallControlSocket(side.control_socket(), request.SerializeAsString(), 2s);
  proto::ControlResponse response;
  if (!reply.ok() || !response.ParseFromString(*reply) ||
      response.code() != proto::ControlResponse::OK || response.vms_size() == 0) {
    return v;
  }
  auto text = cli::ToJson(response.vms(0));
  if (!text.ok()) return v;
  auto status = nlohmann::json::parse(*text, nullptr, false);
  if (status.is_discarded()) return v;
  return ViewOfJson(std::move(status));
}

Status WaitUntilLive(FtdInstance& side, const std::string& vm, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  SideView v;
  while (Clock::now() < deadline) {
    v = ViewOf(side, vm);
    if (v.live && v.ft_state == ProtoName(proto::VM_FT_STATE_UNPROTECTED)) return Status::Ok();
    if (v.failover_state == ProtoName(proto::VM_FT_STATE_HALTED)) break;
    std::this_thread::sleep_for(50ms);
  }
  return Timeout(fmt::format("'{}' on {} did not go live; status: {}\nits ftd log:\n{}", vm,
                             side.node_name(), v.status.dump(), side.LogTail()));
}

std::string BothLogs(FtdInstance& a, FtdInstance& b) {
  return fmt::format("\n---- {}'s ftd log (tail) ----\n{}\n---- {}'s ftd log (tail) ----\n{}",
                     a.node_name(), a.LogTail(), b.node_name(), b.LogTail());
}

}  // namespace ft::testing
