// ftctl: the operator's CLI for ftd, virsh-like. Talks to the local ftd over its root-only
// control socket with typed (protobuf) requests.
//
// Exit codes: 0 ok, 1 the request failed, 2 bad usage, 3 ftd not reachable, 4 unknown VM.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ft/daemon/control_socket.h"
#include "ft/proto/control.pb.h"
#include "ft/shared_disk/shared_directory.h"

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;
constexpr int kExitUnknownVm = 4;

std::string Bytes(double b) {
  if (b < 1024) return fmt::format("{:.0f} B", b);
  if (b < 1024 * 1024) return fmt::format("{:.1f} KiB", b / 1024);
  return fmt::format("{:.1f} MiB", b / (1024 * 1024));
}

nlohmann::json NicJson(const ft::proto::VmStatus& vm) {
  if (!vm.has_nic()) return nullptr;
  const auto& n = vm.nic();
  return {{"tap", n.tap()},
          {"guest_connected", n.guest_connected()},
          {"outbound", n.outbound()},
          {"frames_out", n.frames_out()},
          {"bytes_out", n.bytes_out()},
          {"frames_in", n.frames_in()},
          {"bytes_in", n.bytes_in()},
          {"gate_held", n.gate_held()},
          {"gate_released", n.gate_released()},
          {"gate_released_open", n.gate_released_open()},
          {"gate_released_on_open", n.gate_released_on_open()},
          {"gate_delay_p50_us", n.gate_delay_p50_us()},
          {"gate_delay_p99_us", n.gate_delay_p99_us()},
          {"gate_delay_max_us", n.gate_delay_max_us()},
          {"dropped_gate_full", n.dropped_gate_full()},
          {"dropped_malformed", n.dropped_malformed()},
          {"dropped_host_runts", n.dropped_host_runts()},
          {"dropped_no_guest", n.dropped_no_guest()},
          {"dropped_queue_full", n.dropped_queue_full()},
          {"dropped_no_log_position", n.dropped_no_log_position()},
          {"dropped_backup", n.dropped_backup()},
          {"dropped_tap_errors", n.dropped_tap_errors()}};
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
              n.tap().empty() ? "no TAP" : n.tap().c_str(), n.outbound().c_str(),
              n.guest_connected() ? "connected" : "not connected");
  std::printf("Frames:      %llu out (%s), %llu in (%s), %llu dropped\n",
              static_cast<unsigned long long>(n.frames_out()), Bytes(double(n.bytes_out())).c_str(),
              static_cast<unsigned long long>(n.frames_in()), Bytes(double(n.bytes_in())).c_str(),
              static_cast<unsigned long long>(NicDrops(n)));
  if (n.outbound() == "drop") {
    std::printf("Not sent:    %llu frames of the replayed guest (a backup sends none)\n",
                static_cast<unsigned long long>(n.dropped_backup()));
  }
  if (n.gate_released() > n.gate_released_open() || n.gate_held() > 0) {
    std::printf("Output gate: %llu held now; delay p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                static_cast<unsigned long long>(n.gate_held()), n.gate_delay_p50_us() / 1000,
                n.gate_delay_p99_us() / 1000, n.gate_delay_max_us() / 1000);
  }
}

nlohmann::json FailoverJson(const ft::proto::VmStatus& vm) {
  if (!vm.has_failover()) return nullptr;
  const auto& f = vm.failover();
  return {{"state", f.state()},
          {"shared_storage", f.shared_storage()},
          {"claims_sent", f.claims_sent()},
          {"peer_lost_ns", f.peer_lost_ns()},
          {"caught_up_ns", f.caught_up_ns()},
          {"claim_won_ns", f.claim_won_ns()},
          {"replay_ended_ns", f.replay_ended_ns()},
          {"snapshot_saved_ns", f.snapshot_saved_ns()},
          {"live_ns", f.live_ns()}};
}

// "+123 ms" after the peer was lost, for each failover step reached.
void PrintFailover(const ft::proto::VmStatus& vm) {
  if (!vm.has_failover()) {
    std::printf("Failover:    off (no shared_storage on this node)\n");
    return;
  }
  const auto& f = vm.failover();
  std::printf("Failover:    %s, storage %s, %d claim(s) sent\n", f.state().c_str(),
              f.shared_storage().c_str(), f.claims_sent());
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

nlohmann::json ToJson(const ft::proto::VmStatus& vm) {
  return {{"name", vm.name()},
          {"state", vm.state()},
          {"mode", vm.mode()},
          {"qemu_pid", vm.qemu_pid()},
          {"uptime_ms", vm.uptime_ms()},
          {"console_log", vm.console_log()},
          {"monitor_socket", vm.monitor_socket()},
          {"last_error", vm.last_error()},
          {"role", vm.role()},
          {"ft_state", vm.ft_state()},
          {"ft_note", vm.ft_note()},
          {"epoch", vm.epoch()},
          {"peer", vm.peer()},
          {"log_bytes", vm.log_bytes()},
          {"acked_bytes", vm.acked_bytes()},
          {"log_bytes_per_sec", vm.log_bytes_per_sec()},
          {"log_icount", vm.log_icount()},
          {"replayed_icount", vm.replayed_icount()},
          {"lag_instructions", vm.lag_instructions()},
          {"lag_ms", vm.lag_ms()},
          {"last_ack_ms_ago", vm.last_ack_ms_ago()},
          {"paced_ms", vm.paced_ms()},
          {"channel_rtt_us", vm.channel_rtt_us()},
          {"nic", NicJson(vm)},
          {"failover", FailoverJson(vm)}};
}

std::string Uptime(uint64_t ms) {
  uint64_t s = ms / 1000;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
}

void PrintTable(const ft::proto::ControlResponse& r) {
  std::printf("%-20s %-10s %-8s %-8s %-20s %-8s %s\n", "NAME", "STATE", "MODE", "ROLE", "FT", "PID",
              "UPTIME");
  for (const auto& vm : r.vms()) {
    std::printf("%-20s %-10s %-8s %-8s %-20s %-8s %s\n", vm.name().c_str(), vm.state().c_str(),
                vm.mode().c_str(), vm.role().c_str(), vm.ft_state().c_str(),
                vm.qemu_pid() ? std::to_string(vm.qemu_pid()).c_str() : "-",
                vm.qemu_pid() ? Uptime(vm.uptime_ms()).c_str() : "-");
  }
}

void PrintStatus(const ft::proto::VmStatus& vm, const std::string& node) {
  std::printf("Name:        %s\n", vm.name().c_str());
  std::printf("Node:        %s\n", node.c_str());
  std::printf("State:       %s\n", vm.state().c_str());
  std::printf("Mode:        %s\n", vm.mode().c_str());
  std::printf("QEMU pid:    %s\n", vm.qemu_pid() ? std::to_string(vm.qemu_pid()).c_str() : "-");
  std::printf("Uptime:      %s\n", vm.qemu_pid() ? Uptime(vm.uptime_ms()).c_str() : "-");
  std::printf("Console:     %s\n", vm.console_log().c_str());
  if (!vm.monitor_socket().empty()) std::printf("Monitor:     %s\n", vm.monitor_socket().c_str());
  if (!vm.last_error().empty()) std::printf("Last error:  %s\n", vm.last_error().c_str());
  PrintNic(vm);
  std::printf("Role:        %s\n", vm.role().c_str());
  if (vm.role() == "off" || vm.role().empty()) return;
  std::printf("FT state:    %s\n", vm.ft_state().c_str());
  if (!vm.ft_note().empty()) std::printf("FT note:     %s\n", vm.ft_note().c_str());
  std::printf("Epoch:       %llu\n", static_cast<unsigned long long>(vm.epoch()));
  std::printf("Peer:        %s\n", vm.peer().empty() ? "-" : vm.peer().c_str());
  std::printf("Log:         %s, %s/s, icount %llu\n", Bytes(double(vm.log_bytes())).c_str(),
              Bytes(vm.log_bytes_per_sec()).c_str(),
              static_cast<unsigned long long>(vm.log_icount()));
  if (vm.role() == "primary") {
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
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ftctl - control fault-tolerant VMs on this host's ftd"};
  app.require_subcommand(1);
  app.fallthrough();  // --json and --socket are accepted after the subcommand too
  std::string socket = "/run/ftd/ftd.sock";
  bool json = false;
  app.add_option("-s,--socket", socket, "ftd's control socket")
      ->envname("FTD_CONTROL_SOCKET")
      ->capture_default_str();
  app.add_flag("--json", json, "print JSON for scripts instead of a table");
  auto* list = app.add_subcommand("list", "list the VMs this ftd runs, with their state");
  std::string vm_name;
  auto* status = app.add_subcommand("status", "show one VM's state in detail");
  status->add_option("DOMAIN", vm_name, "the VM's name")->required();
  std::string storage_dir;
  auto* init_storage = app.add_subcommand(
      "init-storage",
      "make DIR (on the storage both hosts mount) the claim store that decides failovers; "
      "run once, on one host; needs no ftd");
  init_storage->add_option("DIR", storage_dir, "the shared directory (it must exist)")
      ->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  if (*init_storage) {
    ft::Status s = ft::shared_disk::SharedDirectoryTestAndSet::Initialize(storage_dir);
    if (!s.ok()) {
      std::fprintf(stderr, "ftctl: %s\n", s.message().c_str());
      return kExitFailed;
    }
    if (json) {
      std::printf("%s\n", nlohmann::json{{"shared_storage", storage_dir}}.dump(2).c_str());
    } else {
      std::printf("'%s' is a claim store now; set 'shared_storage = %s' in both hosts' "
                  "[node] sections\n",
                  storage_dir.c_str(), storage_dir.c_str());
    }
    return 0;
  }

  ft::proto::ControlRequest request;
  request.set_version(ft::daemon::kControlVersion);
  if (*list) request.mutable_list();
  if (*status) request.mutable_status()->set_vm(vm_name);

  auto reply =
      ft::daemon::CallControlSocket(socket, request.SerializeAsString(), std::chrono::seconds(10));
  if (!reply.ok()) {
    std::fprintf(stderr, "ftctl: %s\n", reply.status().message().c_str());
    return reply.status().code() == ft::StatusCode::kUnavailable ? kExitUnreachable : kExitFailed;
  }
  ft::proto::ControlResponse response;
  if (!response.ParseFromString(*reply)) {
    std::fprintf(stderr, "ftctl: ftd at '%s' sent an answer that is not a ControlResponse\n",
                 socket.c_str());
    return kExitFailed;
  }
  if (response.code() != ft::proto::ControlResponse::OK) {
    if (json) {
      std::printf("%s\n", nlohmann::json{{"error", response.error()}}.dump(2).c_str());
    } else {
      std::fprintf(stderr, "ftctl: %s\n", response.error().c_str());
    }
    return response.code() == ft::proto::ControlResponse::UNKNOWN_VM ? kExitUnknownVm : kExitFailed;
  }
  if (json) {
    nlohmann::json out;
    if (*list) {
      out = {{"node", response.node()}, {"vms", nlohmann::json::array()}};
      for (const auto& vm : response.vms()) out["vms"].push_back(ToJson(vm));
    } else {
      out = ToJson(response.vms(0));
      out["node"] = response.node();
    }
    std::printf("%s\n", out.dump(2).c_str());
  } else if (*list) {
    PrintTable(response);
  } else {
    PrintStatus(response.vms(0), response.node());
  }
  return 0;
}
