#include "ft/daemon/daemon.h"

#include <signal.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>

#include <asio.hpp>
#include <filesystem>

#include <fmt/format.h>

#include "ft/channel/session.h"
#include "ft/daemon/control_socket.h"
#include "ft/daemon/managed_vm.h"
#include "ft/log.h"
#include "ft/proto/control.pb.h"
#include "roles.h"
#include "service_notifier.h"

namespace ft::daemon {

namespace {

constexpr int kDaemonNice = -5;

proto::VmStatus DescribeVm(const ManagedVm& vm) {
  VmReport r = vm.Report();
  proto::VmStatus s;
  s.set_name(r.name);
  s.set_state(r.state);
  s.set_mode(r.mode);
  s.set_qemu_pid(r.qemu_pid);
  s.set_uptime_ms(r.uptime_ms);
  s.set_console_log(r.console_log);
  s.set_monitor_socket(r.monitor_socket);
  s.set_last_error(r.last_error);
  s.set_role(r.role);
  s.set_ft_state(r.ft_state);
  s.set_ft_note(r.ft_note);
  s.set_epoch(r.epoch);
  s.set_peer(r.peer);
  s.set_log_bytes(r.log_bytes);
  s.set_acked_bytes(r.acked_bytes);
  s.set_log_bytes_per_sec(r.log_bytes_per_sec);
  s.set_log_icount(r.log_icount);
  s.set_replayed_icount(r.replayed_icount);
  s.set_lag_instructions(r.lag_instructions);
  s.set_lag_ms(r.lag_ms);
  s.set_last_ack_ms_ago(r.last_ack_ms_ago);
  s.set_paced_ms(r.paced_ms);
  s.set_channel_rtt_us(r.channel_rtt_us);
  if (r.nic) {
    const net::NicStats& n = *r.nic;
    auto* nic = s.mutable_nic();
    nic->set_tap(n.tap);
    nic->set_guest_connected(n.guest_connected);
    nic->set_outbound(net::OutboundName(n.outbound));
    nic->set_frames_out(n.frames_out);
    nic->set_bytes_out(n.bytes_out);
    nic->set_frames_in(n.frames_in);
    nic->set_bytes_in(n.bytes_in);
    nic->set_gate_held(n.gate.held_frames);
    nic->set_gate_released(n.gate.released);
    nic->set_gate_released_open(n.gate.released_open);
    nic->set_gate_released_on_open(n.gate.released_on_open);
    nic->set_gate_delay_p50_us(n.gate.DelayPercentileUs(50));
    nic->set_gate_delay_p99_us(n.gate.DelayPercentileUs(99));
    nic->set_gate_delay_max_us(std::chrono::duration<double, std::micro>(n.gate.max_delay).count());
    nic->set_dropped_gate_full(n.gate.dropped_full);
    nic->set_dropped_malformed(n.dropped_malformed);
    nic->set_dropped_host_runts(n.dropped_host_runts);
    nic->set_dropped_no_guest(n.dropped_no_guest);
    nic->set_dropped_queue_full(n.dropped_queue_full);
    nic->set_dropped_no_log_position(n.dropped_no_log_position);
    nic->set_dropped_backup(n.dropped_backup);
    nic->set_dropped_tap_errors(n.dropped_tap_errors);
  }
  if (r.failover) {
    const FailoverReport& f = *r.failover;
    auto* fo = s.mutable_failover();
    fo->set_state(f.state);
    fo->set_shared_storage(f.shared_storage);
    fo->set_claims_sent(f.claims_sent);
    fo->set_peer_lost_ns(f.peer_lost_ns);
    fo->set_caught_up_ns(f.caught_up_ns);
    fo->set_claim_won_ns(f.claim_won_ns);
    fo->set_replay_ended_ns(f.replay_ended_ns);
    fo->set_snapshot_saved_ns(f.snapshot_saved_ns);
    fo->set_live_ns(f.live_ns);
  }
  return s;
}

// Typed requests from ftctl -> a typed response. Never throws, never blocks.
std::string HandleControlRequest(const Config& config,
                                 const std::vector<std::unique_ptr<ManagedVm>>& runners,
                                 const std::string& payload) {
  proto::ControlRequest request;
  proto::ControlResponse response;
  response.set_node(config.node.name);
  if (!request.ParseFromString(payload)) {
    response.set_code(proto::ControlResponse::BAD_REQUEST);
    response.set_error("request is not a valid ControlRequest message");
  } else if (request.version() != kControlVersion) {
    response.set_code(proto::ControlResponse::BAD_REQUEST);
    response.set_error(
        fmt::format("control protocol version {} is not supported (ftd speaks {}); "
                    "use the ftctl of the same release",
                    request.version(), kControlVersion));
  } else if (request.has_list()) {
    for (const auto& r : runners) *response.add_vms() = DescribeVm(*r);
  } else if (request.has_status()) {
    const ManagedVm* found = nullptr;
    for (const auto& r : runners) {
      if (r->name() == request.status().vm()) found = r.get();
    }
    if (!found) {
      response.set_code(proto::ControlResponse::UNKNOWN_VM);
      response.set_error(
          fmt::format("no VM named '{}' on node '{}'", request.status().vm(), config.node.name));
    } else {
      *response.add_vms() = DescribeVm(*found);
    }
  } else {
    response.set_code(proto::ControlResponse::BAD_REQUEST);
    response.set_error("request names no command this ftd knows");
  }
  return response.SerializeAsString();
}

}  // namespace

int RunDaemon(const Config& config) {
  auto log = Logger("ftd");
  // Writes to a peer that went away must be errors, not a signal that kills the daemon.
  signal(SIGPIPE, SIG_IGN);

  // Lockstep's control loop (reading the log, pacing, acks, heartbeats) must not be starved
  // by the VMs it paces: ftd runs at nice -5 when allowed, its QEMUs at 0.
  if (setpriority(PRIO_PROCESS, 0, kDaemonNice) == 0) {
    log->debug("running at nice {}", kDaemonNice);
  } else {
    log->info("cannot raise ftd's priority to nice {} ({}): pacing may overshoot under load",
              kDaemonNice, std::strerror(errno));
  }

  asio::io_context io;
  asio::signal_set stop_signals(io, SIGTERM, SIGINT);
  asio::signal_set child_signals(io, SIGCHLD);

  std::error_code ec;
  bool made_run_dir = !std::filesystem::exists(config.node.run_dir, ec);
  std::filesystem::create_directories(config.node.run_dir, ec);
  std::filesystem::create_directories(
      std::filesystem::path(config.node.control_socket).parent_path(), ec);
  std::vector<std::unique_ptr<ManagedVm>> runners;
  int started = 0;
  for (const auto& spec : config.vms) {
    auto runner = MakeManagedVm(io, config.node, spec, config.RoleOf(spec.name));
    if (Status s = runner->Start(); !s.ok()) {
      log->error("vm '{}' not started: {}", spec.name, s.ToString());
    } else {
      ++started;
    }
    runners.push_back(std::move(runner));
  }
  ControlServer control(io, config.node.control_socket, [&](const std::string& request) {
    return HandleControlRequest(config, runners, request);
  });
  if (Status s = control.Start(); !s.ok()) {
    log->error("{}", s.message());
    for (auto& r : runners) r->Stop([] {});
    io.run();  // let the stops finish
    return 1;
  }
  // Backups accept their primaries on the logging channel.
  std::unique_ptr<channel::Listener> listener;
  bool any_backup = false;
  for (const auto& r : runners) any_backup = any_backup || r->role() == FtRole::kBackup;
  if (any_backup) {
    auto find = [&runners](const std::string& vm) -> ManagedVm* {
      for (auto& r : runners) {
        if (r->name() == vm) return r.get();
      }
      return nullptr;
    };
    auto created = channel::Listener::Create(
        io, config.node.channel.listen_host, config.node.channel.listen_port,
        ChannelOptionsFrom(config.node.channel),
        [&config, find](const std::string& vm) -> Result<channel::Identity> {
          ManagedVm* m = find(vm);
          if (!m)
            return NotFound(fmt::format("no VM named '{}' on node '{}'", vm, config.node.name));
          return m->ExpectPrimary();
        },
        [find](std::shared_ptr<channel::Session> session) {
          if (ManagedVm* m = find(session->peer().vm)) {
            m->AdoptSession(std::move(session));
          } else {
            session->Close();
          }
        });
    if (!created.ok()) {
      log->error("logging channel: {}", created.status().ToString());
      control.Stop();
      for (auto& r : runners) r->Stop([] {});
      io.run();
      return 1;
    }
    listener = std::move(created).value();
    log->info("logging channel: listening on {}:{}", config.node.channel.listen_host,
              listener->port());
  }
  log->info("node '{}' up: {} of {} VM(s) started; state {}, runtime {}", config.node.name, started,
            config.vms.size(), config.node.state_dir, config.node.run_dir);
  ServiceNotifier systemd(io, [&runners] {
    std::vector<VmReport> reports;
    for (const auto& r : runners) reports.push_back(r->Report());
    return ServiceStatusLine(reports);
  });
  systemd.Ready();

  std::function<void()> wait_child = [&] {
    child_signals.async_wait([&](const std::error_code& e, int) {
      if (e) return;
      for (auto& r : runners) r->OnChildSignal();
      wait_child();
    });
  };
  wait_child();

  stop_signals.async_wait([&](const std::error_code& e, int signo) {
    if (e) return;
    log->info("signal {} received: stopping {} VM(s)", signo, runners.size());
    systemd.Stopping();
    auto remaining = std::make_shared<size_t>(runners.size());
    control.Stop();
    if (listener) listener->Close();
    auto all_done = [&] {
      systemd.Close();
      child_signals.cancel();
      stop_signals.cancel();
    };
    if (*remaining == 0) all_done();
    for (auto& r : runners) {
      r->Stop([remaining, all_done] {
        if (--*remaining == 0) all_done();
      });
    }
  });

  io.run();
  runners.clear();
  if (made_run_dir) std::filesystem::remove(config.node.run_dir, ec);  // only if empty
  log->info("node '{}' stopped", config.node.name);
  return 0;
}

}  // namespace ft::daemon
