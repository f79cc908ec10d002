// ftctl: the operator's CLI for ftd, virsh-like. Talks to the local ftd over its root-only
// control socket with typed (protobuf) requests.
//
// Exit codes (docs/operations.md): 0 ok, 1 the request failed, 2 bad usage, 3 ftd not
// reachable, 4 unknown VM or domain, 5 FT already on, 6 the peer ftd not reachable, 7 refused
// (the VM cannot be protected, or not in its current state).
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <variant>

#include <fmt/format.h>

#include "ft/daemon/config.h"
#include "ft/daemon/control_socket.h"
#include "ft/libvirt/connection.h"
#include "ft/libvirt/domain_spec.h"
#include "ft/net/guest_nic.h"
#include "ft/proto/control.pb.h"
#include "ft/proto/ftctl.pb.h"
#include "ft/shared_disk/shared_directory.h"
#include "ft/utc_time.h"
#include "ftctl_json.h"

namespace {

// A state's text on the wire ("waiting-for-backup"), as ftd names it (vm_status_enums.h).
using ft::daemon::FtRoleName;
using ft::daemon::SwitchoverKindName;
using ft::daemon::VmFtStateName;
using ft::daemon::VmStateName;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;
constexpr int kExitUnknownVm = 4;
constexpr int kExitAlreadyOn = 5;
constexpr int kExitPeerUnreachable = 6;
constexpr int kExitRefused = 7;

// What ftctl prints and exits with when it gives up.
struct Failure {
  int exit_code;
  std::string message;
};

// --json: prints `message` as protobuf's JSON printer renders it (ftctl_json.h); 0, or 1 if
// the printer failed.
int PrintJson(const google::protobuf::Message& message) {
  auto text = ft::cli::ToJson(message);
  if (!text.ok()) {
    std::fprintf(stderr, "ftctl: %s\n", text.status().message().c_str());
    return kExitFailed;
  }
  std::printf("%s\n", text->c_str());
  return 0;
}

int Fail(const Failure& f, bool json) {
  if (json) {
    ft::proto::FtctlError error;
    error.set_error(f.message);
    error.set_exit_code(f.exit_code);
    PrintJson(error);
  } else {
    std::fprintf(stderr, "ftctl: %s\n", f.message.c_str());
  }
  return f.exit_code;
}

int ExitCodeOf(ft::proto::ControlResponse::Code code) {
  switch (code) {
    case ft::proto::ControlResponse::OK:
      return 0;
    case ft::proto::ControlResponse::UNKNOWN_VM:
      return kExitUnknownVm;
    case ft::proto::ControlResponse::ALREADY_ENABLED:
      return kExitAlreadyOn;
    case ft::proto::ControlResponse::PEER_UNREACHABLE:
      return kExitPeerUnreachable;
    case ft::proto::ControlResponse::REFUSED:
      return kExitRefused;
    default:
      return kExitFailed;
  }
}

// The NIC's outbound mode on the wire ("gated"): vm-network's name for the same value.
const char* OutboundText(ft::proto::Outbound o) {
  return ft::net::OutboundName(static_cast<ft::net::Outbound>(o));
}

std::string Bytes(double b) {
  if (b < 1024) return fmt::format("{:.0f} B", b);
  if (b < 1024 * 1024) return fmt::format("{:.1f} KiB", b / 1024);
  return fmt::format("{:.1f} MiB", b / (1024 * 1024));
}

uint64_t NicDrops(const ft::proto::NicStatus& n) {
  return n.dropped_gate_full() + n.dropped_malformed() + n.dropped_host_runts() +
         n.dropped_no_guest() + n.dropped_queue_full() + n.dropped_no_log_position() +
         n.dropped_tap_errors();
}

void PrintNic(const ft::proto::VmStatus& vm) {
  if (!vm.has_nic()) return;
  const auto& n = vm.nic();
  std::printf("NIC:         %s, outbound %s, QEMU %s\n",
              n.tap().empty() ? "no TAP" : n.tap().c_str(), OutboundText(n.outbound()),
              n.guest_connected() ? "connected" : "not connected");
  std::printf("Frames:      %llu out (%s), %llu in (%s), %llu dropped\n",
              static_cast<unsigned long long>(n.frames_out()), Bytes(double(n.bytes_out())).c_str(),
              static_cast<unsigned long long>(n.frames_in()), Bytes(double(n.bytes_in())).c_str(),
              static_cast<unsigned long long>(NicDrops(n)));
  if (n.outbound() == ft::proto::OUTBOUND_DROP) {
    std::printf("Not sent:    %llu frames of the replayed guest (a backup sends none)\n",
                static_cast<unsigned long long>(n.dropped_backup()));
  }
  if (n.gate_released() > n.gate_released_open() || n.gate_held() > 0) {
    std::printf("Output gate: %llu held now; delay p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                static_cast<unsigned long long>(n.gate_held()), n.gate_delay_p50_us() / 1000,
                n.gate_delay_p99_us() / 1000, n.gate_delay_max_us() / 1000);
  }
}

void PrintReprotect(const ft::proto::VmStatus& vm) {
  if (!vm.has_reprotect()) return;
  const auto& r = vm.reprotect();
  std::printf("Re-protect:  %s", r.phase().c_str());
  if (r.bytes_total()) {
    std::printf(", %.1f of %.1f MiB shipped", double(r.bytes_sent()) / (1 << 20),
                double(r.bytes_total()) / (1 << 20));
  }
  if (r.pause_ms() >= 0) std::printf(", paused %lld ms", static_cast<long long>(r.pause_ms()));
  std::printf(", %.1f s%s%s\n", double(r.elapsed_ms()) / 1000, r.note().empty() ? "" : ": ",
              r.note().c_str());
}

// "+123 ms" after the peer was lost, for each failover step reached.
void PrintFailover(const ft::proto::VmStatus& vm) {
  if (!vm.has_failover()) {
    std::printf("Failover:    off (no shared_storage on this node)\n");
    return;
  }
  const auto& f = vm.failover();
  std::printf("Failover:    %s, storage %s, %d claim(s) sent\n", VmFtStateName(f.state()),
              f.shared_storage().c_str(), f.claims_sent());
  if (f.has_newest_claim()) {
    const auto& c = f.newest_claim();
    std::printf("  newest claim: epoch %llu won by %s at %s (%s)\n",
                static_cast<unsigned long long>(c.epoch()), c.winner().c_str(),
                ft::FormatUtcMs(c.unix_time_ms()).c_str(), c.reason().c_str());
  }
  if (!f.peer_lost_ns()) return;
  auto step = [&](const char* what, int64_t ns) {
    if (ns) std::printf("  %-22s +%.0f ms\n", what, double(ns - f.peer_lost_ns()) / 1e6);
  };
  std::printf("  %-22s at 0 ms\n", "peer lost");
  step("caught up", f.caught_up_ns());
  step("claim won", f.claim_won_ns());
  step("replay at end of log", f.replay_ended_ns());
  step("snapshot saved", f.snapshot_saved_ns());
  step("live", f.live_ns());
}

std::string Uptime(uint64_t ms) {
  uint64_t s = ms / 1000;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
}

// ftd's VMs first, then libvirt's domains FT is off for.
void PrintTable(const ft::proto::ControlResponse& r,
                const std::map<std::string, std::string>& libvirt) {
  std::printf("%-20s %-10s %-8s %-8s %-20s %-8s %-8s %s\n", "NAME", "STATE", "MODE", "ROLE", "FT",
              "PID", "UPTIME", "LIBVIRT");
  auto domain = [&libvirt](const std::string& name) -> std::string {
    auto it = libvirt.find(name);
    return it == libvirt.end() ? "-" : it->second;
  };
  for (const auto& vm : r.vms()) {
    std::printf("%-20s %-10s %-8s %-8s %-20s %-8s %-8s %s\n", vm.name().c_str(),
                VmStateName(vm.state()), vm.mode().c_str(), FtRoleName(vm.role()),
                VmFtStateName(vm.ft_state()),
                vm.qemu_pid() ? std::to_string(vm.qemu_pid()).c_str() : "-",
                vm.qemu_pid() ? Uptime(vm.uptime_ms()).c_str() : "-", domain(vm.name()).c_str());
  }
  for (const auto& [name, state] : libvirt) {
    bool on_ftd = false;
    for (const auto& vm : r.vms()) on_ftd = on_ftd || vm.name() == name;
    if (on_ftd) continue;
    std::printf("%-20s %-10s %-8s %-8s %-20s %-8s %-8s %s\n", name.c_str(), "-", "-", "-", "off",
                "-", "-", state.c_str());
  }
}

void PrintStatus(const ft::proto::VmStatus& vm, const std::string& node) {
  std::printf("Name:        %s\n", vm.name().c_str());
  std::printf("Node:        %s\n", node.c_str());
  std::printf("State:       %s\n", VmStateName(vm.state()));
  std::printf("Mode:        %s\n", vm.mode().c_str());
  std::printf("QEMU pid:    %s\n", vm.qemu_pid() ? std::to_string(vm.qemu_pid()).c_str() : "-");
  std::printf("Uptime:      %s\n", vm.qemu_pid() ? Uptime(vm.uptime_ms()).c_str() : "-");
  std::printf("Console:     %s\n", vm.console_log().c_str());
  if (!vm.monitor_socket().empty()) std::printf("Monitor:     %s\n", vm.monitor_socket().c_str());
  if (!vm.last_error().empty()) std::printf("Last error:  %s\n", vm.last_error().c_str());
  PrintNic(vm);
  std::printf("Role:        %s\n", FtRoleName(vm.role()));
  if (vm.role() != ft::proto::FT_ROLE_PRIMARY && vm.role() != ft::proto::FT_ROLE_BACKUP) return;
  std::printf("FT state:    %s\n", VmFtStateName(vm.ft_state()));
  if (!vm.ft_note().empty()) std::printf("FT note:     %s\n", vm.ft_note().c_str());
  std::printf("Epoch:       %llu\n", static_cast<unsigned long long>(vm.epoch()));
  std::printf("Peer:        %s\n", vm.peer().empty() ? "-" : vm.peer().c_str());
  std::printf("Log:         %s, %s/s, icount %llu\n", Bytes(double(vm.log_bytes())).c_str(),
              Bytes(vm.log_bytes_per_sec()).c_str(),
              static_cast<unsigned long long>(vm.log_icount()));
  if (vm.role() == ft::proto::FT_ROLE_PRIMARY) {
    std::printf("Acked:       %s\n", Bytes(double(vm.acked_bytes())).c_str());
    std::printf("Paced:       %.1f s in total\n", double(vm.paced_ms()) / 1000);
  }
  std::printf("Replayed:    icount %llu\n", static_cast<unsigned long long>(vm.replayed_icount()));
  std::printf("Lag:         %.1f ms guest time (%llu instructions)\n", vm.lag_ms(),
              static_cast<unsigned long long>(vm.lag_instructions()));
  std::printf("Last ack:    %s\n", vm.last_ack_ms_ago() < 0
                                       ? "never"
                                       : fmt::format("{} ms ago", vm.last_ack_ms_ago()).c_str());
  if (vm.channel_rtt_us())
    std::printf("Channel RTT: %.2f ms\n", double(vm.channel_rtt_us()) / 1000);
  PrintFailover(vm);
  PrintReprotect(vm);
}

void PrintSwitchover(const ft::proto::SwitchoverReport& s) {
  bool drill = s.kind() == ft::proto::SWITCHOVER_KIND_DRILL;
  std::printf("%s of '%s': %s -> %s, epoch %llu\n", drill ? "Drill" : "Planned failover",
              s.vm().c_str(), s.from_node().c_str(), s.to_node().c_str(),
              static_cast<unsigned long long>(s.epoch()));
  if (drill) {
    std::printf("  %-34s at 0 ms\n", ("QEMU on " + s.from_node() + " killed").c_str());
  } else {
    std::printf("  %-34s +%.0f ms (%s of log, all acknowledged)\n",
                ("vCPU stopped, log drained on " + s.from_node()).c_str(), s.drained_ms(),
                Bytes(double(s.log_bytes())).c_str());
  }
  std::printf("  %-34s +%.0f ms\n", ("live on " + s.to_node()).c_str(), s.live_ms());
  const auto& f = s.peer_steps();
  if (f.peer_lost_ns() && f.live_ns()) {
    double on_peer = double(f.live_ns() - f.peer_lost_ns()) / 1e6;
    std::printf("  on %s, after it lost %s:\n", s.to_node().c_str(), s.from_node().c_str());
    auto step = [&](const char* what, int64_t ns) {
      if (ns) std::printf("    %-30s +%.0f ms\n", what, double(ns - f.peer_lost_ns()) / 1e6);
    };
    step("caught up", f.caught_up_ns());
    step("claim won", f.claim_won_ns());
    step("replay at end of log", f.replay_ended_ns());
    step("snapshot saved", f.snapshot_saved_ns());
    step("live", f.live_ns());
    if (drill) {
      std::printf("  %-34s ~%.0f ms (the heartbeat timeout)\n", "detection", s.live_ms() - on_peer);
    }
  }
  std::printf("Protection: %s\n", s.protection_note().c_str());
}

// libvirt's domains for `ftctl list`: name -> "running" / "shut off"; an error is reported
// once and the list goes on with ftd's VMs only.
struct LibvirtView {
  std::map<std::string, std::string> domains;
  std::string error;
};

LibvirtView ReadLibvirt(const std::string& uri) {
  LibvirtView view;
  auto conn = ft::libvirt::Connection::Open(uri);
  if (!conn.ok()) {
    view.error = conn.status().message();
    return view;
  }
  auto list = (*conn)->ListDomains();
  if (!list.ok()) {
    view.error = list.status().message();
    return view;
  }
  for (const auto& d : *list) view.domains[d.name] = d.active ? "running" : "shut off";
  return view;
}

// enable: libvirt's definition -> ftd's VM spec, refusing what FT cannot protect.
struct EnableInput {
  std::string vm_config, source;
  std::vector<std::string> warnings;
};

std::variant<EnableInput, Failure> ReadDomainForEnable(const std::string& uri,
                                                       const std::string& domain) {
  auto conn = ft::libvirt::Connection::Open(uri);
  if (!conn.ok()) return Failure{kExitFailed, conn.status().message()};
  auto list = (*conn)->ListDomains();
  if (!list.ok()) return Failure{kExitFailed, list.status().message()};
  const ft::libvirt::DomainInfo* found = nullptr;
  for (const auto& d : *list) {
    if (d.name == domain) found = &d;
  }
  if (!found) {
    return Failure{kExitUnknownVm,
                   fmt::format("no domain named '{}' in libvirt at {} (virsh -c {} list --all)",
                               domain, uri, uri)};
  }
  if (found->active) {
    return Failure{kExitRefused,
                   fmt::format("domain '{}' is running under libvirt; ftd runs protected VMs "
                               "itself: shut it down first (virsh -c {} shutdown {})",
                               domain, uri, domain)};
  }
  auto xml = (*conn)->DomainXml(domain);
  if (!xml.ok()) return Failure{kExitFailed, xml.status().message()};
  auto imported = ft::libvirt::ImportDomain(*xml, {});
  if (!imported.ok()) {
    return Failure{kExitRefused, fmt::format("domain '{}' cannot be protected: {}", domain,
                                             imported.status().message())};
  }
  EnableInput in;
  in.vm_config = ft::daemon::FormatVmSection(imported->spec);
  in.source = fmt::format("libvirt domain '{}' ({})", domain, uri);
  in.warnings = imported->warnings;
  return in;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ftctl - fault tolerance for the VMs of this host's ftd (virsh-like).\n"
      "Turn FT on for a libvirt domain with 'ftctl enable DOMAIN' on the host that should run "
      "it; its backup starts on the peer host. See docs/operations.md."};
  app.require_subcommand(1);
  app.fallthrough();  // --json, --socket and --connect are accepted after the subcommand too
  std::string socket = "/run/ftd/ftd.sock";
  std::string uri(ft::libvirt::kSystemUri);
  bool json = false;
  app.add_option("-s,--socket", socket, "ftd's control socket")
      ->envname("FTD_CONTROL_SOCKET")
      ->capture_default_str();
  app.add_option("-c,--connect", uri, "libvirt URI the domains are defined in")
      ->envname("LIBVIRT_DEFAULT_URI")
      ->capture_default_str();
  app.add_flag("--json", json, "print JSON for scripts instead of tables and sentences");

  auto* list = app.add_subcommand(
      "list", "list this host's VMs and libvirt's domains, with their FT role and state");
  std::string vm_name;
  auto* status = app.add_subcommand(
      "status", "show one VM in detail: role, state, epoch, peer, lag, log, acks, output gate");
  status->add_option("DOMAIN", vm_name, "the VM's name")->required();
  auto* enable = app.add_subcommand(
      "enable",
      "turn FT on for a libvirt domain that is shut off: ftd runs it here as the primary and "
      "the peer host runs its backup");
  enable->add_option("DOMAIN", vm_name, "the libvirt domain's name")->required();
  bool force = false;
  auto* disable = app.add_subcommand(
      "disable", "turn FT off: the peer's copy stops, this host's copy runs on unprotected");
  disable->add_option("DOMAIN", vm_name, "the VM's name")->required();
  disable->add_flag("--force", force,
                    "turn FT off here even when the peer ftd cannot be told (disable it there "
                    "later)");
  auto* failover = app.add_subcommand(
      "failover",
      "planned switchover: this host's copy stops, the backup replays to the end of the log "
      "and goes live; nothing acknowledged or sent is lost");
  failover->add_option("DOMAIN", vm_name, "the VM's name")->required();
  int drill_timeout_s = 30;
  auto* drill = app.add_subcommand(
      "drill",
      "failover drill: kill this host's (primary) copy for real, as a host crash would, and "
      "report how the backup took over");
  drill->add_option("DOMAIN", vm_name, "the VM's name")->required();
  drill->add_option("--timeout", drill_timeout_s, "seconds to wait for the backup to go live")
      ->check(CLI::Range(1, 600))
      ->capture_default_str();
  std::string storage_dir;
  auto* init_storage = app.add_subcommand(
      "init-storage",
      "make DIR (on the storage both hosts mount) the claim store that decides failovers; "
      "run once, on one host; needs no ftd");
  init_storage->add_option("DIR", storage_dir, "the shared directory (it must exist)")->required();
  bool expect_mount = false;
  init_storage->add_flag("--expect-mount", expect_mount,
                         "refuse unless DIR is a mount point, so that the empty mount point of "
                         "a share that failed to mount never becomes a store");
  app.footer(
      "Exit codes: 0 ok, 1 failed, 2 bad usage, 3 ftd not reachable, 4 unknown VM or domain, "
      "5 FT already on, 6 peer ftd not reachable, 7 refused (cannot be protected, or not in "
      "this state).");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  if (*init_storage) {
    auto id = ft::shared_disk::SharedDirectoryTestAndSet::Initialize(
        storage_dir, {.expect_mount = expect_mount});
    if (!id.ok()) return Fail({kExitFailed, id.status().message()}, json);
    // The id is what the two hosts compare when they connect: printed so that an operator can
    // tell two stores apart when the pair refuses to connect.
    if (json) {
      ft::proto::FtctlStore store;
      store.set_shared_storage(storage_dir);
      store.set_store_id(*id);
      return PrintJson(store);
    }
    std::printf(
        "'%s' is a claim store now (id %s); set 'shared_storage = %s' in both hosts' "
        "[node] sections\n",
        storage_dir.c_str(), id->c_str(), storage_dir.c_str());
    return 0;
  }

  ft::proto::ControlRequest request;
  request.set_version(ft::daemon::kControlVersion);
  std::vector<std::string> warnings;
  auto timeout = std::chrono::seconds(10);
  if (*list) request.mutable_list();
  if (*status) request.mutable_status()->set_vm(vm_name);
  bool reprotecting = false;
  if (*enable) {
    // A VM this ftd already runs (unprotected) keeps its definition: no libvirt needed.
    ft::proto::ControlRequest ask;
    ask.set_version(ft::daemon::kControlVersion);
    ask.mutable_status()->set_vm(vm_name);
    auto known =
        ft::daemon::CallControlSocket(socket, ask.SerializeAsString(), std::chrono::seconds(10));
    ft::proto::ControlResponse known_reply;
    reprotecting = known.ok() && known_reply.ParseFromString(*known) &&
                   known_reply.code() == ft::proto::ControlResponse::OK;
  }
  if (*enable && reprotecting) {
    request.mutable_enable()->set_vm(vm_name);
    request.mutable_enable()->set_source("ftctl enable");
    // The running VM's snapshot and disks go to the peer, then its backup starts.
    timeout = std::chrono::seconds(3600);
  } else if (*enable) {
    auto input = ReadDomainForEnable(uri, vm_name);
    if (auto* f = std::get_if<Failure>(&input)) return Fail(*f, json);
    auto& in = std::get<EnableInput>(input);
    request.mutable_enable()->set_vm_config(in.vm_config);
    request.mutable_enable()->set_source(in.source);
    warnings = in.warnings;
    // The peer receives a replica of every disk (minutes for large ones), then starts the backup.
    timeout = std::chrono::seconds(3600);
  }
  if (*disable) {
    request.mutable_disable()->set_vm(vm_name);
    request.mutable_disable()->set_force(force);
    timeout = std::chrono::seconds(30);
  }
  if (*failover) {
    request.mutable_failover()->set_vm(vm_name);
    timeout = std::chrono::seconds(60);
  }
  if (*drill) {
    request.mutable_drill()->set_vm(vm_name);
    request.mutable_drill()->set_timeout_ms(static_cast<uint32_t>(drill_timeout_s) * 1000);
    timeout = std::chrono::seconds(drill_timeout_s + 15);
  }

  auto reply = ft::daemon::CallControlSocket(socket, request.SerializeAsString(), timeout);
  if (!reply.ok()) {
    return Fail(
        {reply.status().code() == ft::StatusCode::kUnavailable ? kExitUnreachable : kExitFailed,
         reply.status().message()},
        json);
  }
  ft::proto::ControlResponse response;
  if (!response.ParseFromString(*reply)) {
    return Fail({kExitFailed, fmt::format("ftd at '{}' sent an answer that is not a "
                                          "ControlResponse",
                                          socket)},
                json);
  }
  if (response.code() != ft::proto::ControlResponse::OK) {
    return Fail({ExitCodeOf(response.code()), response.error()}, json);
  }

  if (*list) {
    LibvirtView libvirt = ReadLibvirt(uri);
    if (json) {
      ft::proto::FtctlList out;
      ft::cli::MakeList(response, libvirt.domains, libvirt.error, &out);
      return PrintJson(out);
    }
    PrintTable(response, libvirt.domains);
    if (!libvirt.error.empty()) {
      std::fprintf(stderr, "ftctl: libvirt's domains not listed: %s\n", libvirt.error.c_str());
    }
    return 0;
  }
  if (*failover || *drill) {
    if (json) return PrintJson(response.switchover());
    PrintSwitchover(response.switchover());
    return 0;
  }
  if (json) {
    ft::proto::FtctlVm out;
    out.set_node(response.node());
    if (response.vms_size() > 0) *out.mutable_vm() = response.vms(0);
    for (const auto& w : warnings) out.add_warnings(w);
    return PrintJson(out);
  }
  if (*enable) {
    for (const auto& w : warnings) std::printf("note: %s\n", w.c_str());
    const auto& vm = response.vms(0);
    std::printf("FT is on for '%s': primary on %s (%s), backup on the peer (%s), epoch %llu\n",
                vm.name().c_str(), response.node().c_str(), VmFtStateName(vm.ft_state()),
                vm.peer().c_str(), static_cast<unsigned long long>(vm.epoch()));
    if (reprotecting && vm.has_reprotect()) {
      std::printf(
          "it kept running: paused %lld ms for its snapshot, %.1f MiB shipped, "
          "protected %.1f s after the request\n",
          static_cast<long long>(vm.reprotect().pause_ms()),
          double(vm.reprotect().bytes_total()) / (1 << 20),
          double(vm.reprotect().elapsed_ms()) / 1000);
    }
  } else if (*disable) {
    if (response.vms_size() == 0) {
      std::printf("FT is off for '%s'; the halted copy on %s is removed\n", vm_name.c_str(),
                  response.node().c_str());
    } else {
      std::printf("FT is off for '%s'; it runs on %s unprotected\n", vm_name.c_str(),
                  response.node().c_str());
    }
  } else {
    PrintStatus(response.vms(0), response.node());
  }
  return 0;
}
