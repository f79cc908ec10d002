#include "lockstep_pair.h"

#include <filesystem>
#include <thread>

#include <unistd.h>

#include <fmt/format.h>

#include "guest_client.h"

namespace ft::testing {
namespace {

// The guest VM's config with the node's channel settings and the VM's role added.
std::string PairConfig(FtdInstance& side, const LockstepOptions& o, const std::string& role,
                       const std::string& channel_line) {
  std::string text = side.GuestVmConfig(o.vm);
  std::string node_extra = fmt::format(
      "channel_key_file = {}\nheartbeat_interval_ms = {}\nheartbeat_timeout_ms = "
      "{}\nmax_lag_ms = {}\n{}\n",
      side.channel_key_path(), o.heartbeat_interval_ms, o.heartbeat_timeout_ms, o.max_lag_ms,
      channel_line);
  if (!o.shared_storage.empty()) node_extra += "shared_storage = " + o.shared_storage + "\n";
  if (o.max_unacked_mib > 0) node_extra += fmt::format("max_unacked_mib = {}\n", o.max_unacked_mib);
  if (!o.reprotect.empty()) node_extra += "reprotect = " + o.reprotect + "\n";
  // The QEMU for VMs that arrive at run time (a re-protection's backup): the same build.
  node_extra += "qemu = " + QemuBinary() + "\n";
  auto vm_section = text.find("\n[vm ");
  text.insert(vm_section, "\n" + node_extra);
  text += "ft = " + role + "\n";
  return text;
}

}  // namespace

Result<std::unique_ptr<LockstepPair>> LockstepPair::Start(const LockstepOptions& options) {
  std::unique_ptr<LockstepPair> pair(new LockstepPair(options));
  FT_ASSIGN_OR_RETURN(pair->backup_, FtdInstance::Create("backup", options.backup_parent_dir));
  FT_ASSIGN_OR_RETURN(pair->primary_, FtdInstance::Create("primary"));
  Lab* lab = options.lab;
  // In the lab the backup listens on host B's channel address; each host is a fresh
  // namespace, so a fixed port is free.
  std::string listen_host = lab ? lab->b_channel_ip() : "127.0.0.1";
  uint16_t listen_port = lab ? 7400 : FreeLoopbackPort();
  std::string peer_host = listen_host;
  uint16_t peer_port = listen_port;
  if (options.channel_delay.count() > 0) {
    auto start_proxy = [&] {
      auto proxy = DelayProxy::Start(listen_port, options.channel_delay, listen_host);
      if (proxy.ok()) pair->proxy_ = std::move(proxy).value();
    };
    if (lab) {
      FT_RETURN_IF_ERROR(RunInNetns(lab->ns_a(), start_proxy));
    } else {
      start_proxy();
    }
    if (!pair->proxy_) return Unavailable("the channel's delay proxy did not start");
    peer_host = "127.0.0.1";
    peer_port = pair->proxy_->port();
  }
  for (FtdInstance* side : {pair->backup_.get(), pair->primary_.get()}) {
    FT_RETURN_IF_ERROR(side->WriteChannelKey());
  }
  LockstepOptions primary_options = options;
  if (lab && primary_options.vm.bridge.empty()) {
    primary_options.vm.bridge = lab->bridge();
    primary_options.vm.lab_ip = lab->vm_ip() + "/24";
    // A tickless idle guest sees an arriving frame only at its next timer (README).
    if (primary_options.vm.extra_cmdline.empty()) primary_options.vm.extra_cmdline = "nohz=off";
    primary_options.vm.stream_port = 0;
    primary_options.vm.records_port = 0;
  }
  LockstepOptions backup_options = primary_options;
  if (options.backup_vm) backup_options.vm = *options.backup_vm;
  if (options.backup_shared_storage) backup_options.shared_storage = *options.backup_shared_storage;
  backup_options.vm.stream_port = 0;  // a replayer binds no forwarded ports anyway
  backup_options.vm.records_port = 0;
  std::string backup_channel = fmt::format("listen = {}:{}", listen_host, listen_port);
  std::string primary_channel = fmt::format("peer = {}:{}", peer_host, peer_port);
  if (lab && options.both_ways) {
    std::string at_a = fmt::format("{}:{}", lab->Get("FTLAB_A_FT_IP"), listen_port);
    backup_channel += "\npeer = " + at_a;
    primary_channel += "\nlisten = " + at_a;
  }
  FT_RETURN_IF_ERROR(pair->backup_->WriteConfig(
      PairConfig(*pair->backup_, backup_options, "backup", backup_channel)));
  FT_RETURN_IF_ERROR(pair->primary_->WriteConfig(
      PairConfig(*pair->primary_, primary_options, "primary", primary_channel)));
  if (options.prepare_backup) FT_RETURN_IF_ERROR(options.prepare_backup(*pair->backup_));
  pair->backup_->set_cpus(options.backup_cpus);
  pair->primary_->set_cpus(options.primary_cpus);
  FT_RETURN_IF_ERROR(pair->backup_->Start({}, options.backup_env, lab ? lab->ns_b() : ""));
  if (!WaitForFileContaining(pair->backup_->ftd_log(), "logging channel: listening",
                             std::chrono::seconds(30))) {
    return Unavailable("backup ftd did not start listening:\n" +
                       ReadFile(pair->backup_->ftd_log()));
  }
  FT_RETURN_IF_ERROR(pair->primary_->Start({}, options.primary_env, lab ? lab->ns_a() : ""));
  return pair;
}

LockstepPair::~LockstepPair() {
  // Primary first: a backup that outlives it only logs "primary lost".
  primary_.reset();
  backup_.reset();
  proxy_.reset();
}

Result<nlohmann::json> LockstepPair::Status(FtdInstance& side) { return side.StatusJson(vm()); }

ft::Status LockstepPair::WaitForFtState(FtdInstance& side, proto::VmFtState state,
                                        std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string last;
  while (Clock::now() < deadline) {
    auto st = Status(side);
    if (st.ok()) {
      last = st->value("ft_state", "");
      if (last == ProtoName(state)) return ft::Status::Ok();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Timeout(fmt::format("ft_state is '{}' after {} ms, expected '{}'", last, timeout.count(),
                             ProtoName(state)));
}

ft::Status LockstepPair::StopPrimaryAndDrain(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  auto exit = primary_->Stop(timeout);
  if (!exit.ok()) return exit.status();
  if (!exit->clean()) return Internal("primary ftd ended " + exit->Describe());
  // The backup's replayer exits by itself once it has replayed the log's END.
  while (Clock::now() < deadline) {
    auto st = Status(*backup_);
    if (st.ok() && st->value("ft_state", "") == ProtoName(proto::VM_FT_STATE_FINISHED) &&
        st->value("qemu_pid", 0) == 0) {
      // A replayer that ran its log out ended as it should: stopped, with no error to show.
      if (st->value("state", "") != ProtoName(proto::RUN_STATE_STOPPED) ||
          !st->value("last_error", "").empty()) {
        return Internal("the backup finished, but its replayer is reported as " +
                        st->value("state", "") + ": " + st->value("last_error", ""));
      }
      return ft::Status::Ok();
    }
    if (st.ok() && st->value("ft_state", "") == ProtoName(proto::VM_FT_STATE_FAILED)) {
      return Internal("backup failed: " + st->value("ft_note", ""));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  auto st = Status(*backup_);
  std::string where;
  if (st.ok() && st->value("qemu_pid", 0) > 0) {
    where = "\n" + DescribeProcess(st->value("qemu_pid", 0));
  }
  return Timeout("backup replay did not finish; status: " + (st.ok() ? st->dump() : "") + where);
}

std::string LockstepPair::primary_console() const { return ReadFile(primary_->console_log(vm())); }
std::string LockstepPair::backup_console() const { return ReadFile(backup_->console_log(vm())); }

std::string FirstDifference(const std::string& a, const std::string& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  if (i == a.size() && i == b.size()) return "identical";
  size_t line_start = a.rfind('\n', i == 0 ? 0 : i - 1);
  line_start = line_start == std::string::npos ? 0 : line_start + 1;
  auto excerpt = [&](const std::string& s) {
    return s.substr(line_start, std::min<size_t>(160, s.size() - std::min(s.size(), line_start)));
  };
  return fmt::format("first difference at byte {} (sizes {} and {}):\n  A: {}\n  B: {}", i,
                     a.size(), b.size(), excerpt(a), excerpt(b));
}

}  // namespace ft::testing
