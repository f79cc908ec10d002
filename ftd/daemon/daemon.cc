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
#include "loop_watchdog.h"
#include "operations.h"
#include "peer_link.h"
#include "repeating_wait.h"
#include "roles.h"
#include "service_notifier.h"

namespace ft::daemon {

namespace {

constexpr int kDaemonNice = -5;

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

  std::error_code ec;
  bool made_run_dir = !std::filesystem::exists(config.node.run_dir, ec);
  std::filesystem::create_directories(config.node.run_dir, ec);
  std::filesystem::create_directories(
      std::filesystem::path(config.node.control_socket).parent_path(), ec);
  if (!config.node.channel.key.empty()) {
    // VMs enabled at run time (ftctl enable, the peer's protect) use this QEMU: probe it now,
    // while blocking is harmless, not later on the event loop.
    auto version = RrVersionOf(config.node, config.node.qemu);
    if (!version.ok()) {
      log->warn(
          "cannot read the rr log version of '{}' (qemu in [node]): {}; protecting VMs "
          "with it will fail",
          config.node.qemu, version.status().ToString());
    }
  }
  std::vector<std::unique_ptr<ManagedVm>> runners;
  // A QEMU (or helper) ended: each VM looks whether it was its own. Registered before any
  // QEMU starts, so that an exit before Start() is delivered then, not lost.
  SignalWatch child_signals(io, SIGCHLD, [&runners] {
    for (auto& r : runners) r->OnChildSignal();
  });
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
  Operations operations(io, config, runners);
  auto stop_all_and_fail = [&](const std::string& why) {
    log->error("{}", why);
    for (auto& r : runners) r->Stop([] {});
    io.run();  // let the stops finish
    return 1;
  };
  if (Status s = operations.StartEnabledVms(); !s.ok()) {
    return stop_all_and_fail(fmt::format("VMs turned on with ftctl: {}", s.message()));
  }
  ControlServer control(io, config.node.control_socket,
                        [&](const std::string& request, ControlServer::Respond respond) {
                          operations.HandleControl(request, std::move(respond));
                        });
  if (Status s = control.Start(); !s.ok()) return stop_all_and_fail(s.message());
  // The logging channel: backups accept their primaries, and the peer ftd's requests
  // (enable, disable, failover, drills) arrive on the same port.
  PeerServer peer_server(io, [&](const std::string& request, PeerServer::Respond respond) {
    operations.HandlePeer(request, std::move(respond));
  });
  std::unique_ptr<channel::Listener> listener;
  if (!config.node.channel.listen_host.empty()) {
    auto created = channel::Listener::Create(
        io, config.node.channel.listen_host, config.node.channel.listen_port,
        ChannelOptionsFrom(config.node.channel),
        [&config, &operations](const channel::Identity& peer) -> Result<channel::Identity> {
          if (peer.service == channel::Service::kPeerControl) {
            return PeerControlIdentity(config.node);
          }
          ManagedVm* m = operations.Find(peer.vm);
          if (!m) {
            return NotFound(
                fmt::format("no VM named '{}' on node '{}'", peer.vm, config.node.name));
          }
          return m->ExpectPrimary();
        },
        [&operations, &peer_server](std::shared_ptr<channel::Session> session) {
          if (session->peer().service == channel::Service::kPeerControl) {
            peer_server.Adopt(std::move(session));
          } else if (ManagedVm* m = operations.Find(session->peer().vm)) {
            m->AdoptSession(std::move(session));
          } else {
            session->Close();
          }
        });
    if (!created.ok()) {
      control.Stop();
      return stop_all_and_fail(fmt::format("logging channel: {}", created.status().ToString()));
    }
    listener = std::move(created).value();
    log->info("logging channel: listening on {}:{}", config.node.channel.listen_host,
              listener->port());
  }
  log->info("node '{}' up: {} of {} VM(s) from {} started, {} in all; state {}, runtime {}",
            config.node.name, started, config.vms.size(), config.source, runners.size(),
            config.node.state_dir, config.node.run_dir);
  ServiceNotifier systemd(io, [&runners] {
    std::vector<VmReport> reports;
    for (const auto& r : runners) reports.push_back(r->Report());
    return ServiceStatusLine(reports);
  });
  systemd.Ready();
  // Nothing on the loop may block (docs/design.md): a late tick says something did.
  LoopWatchdog watchdog(io);
  watchdog.Start();

  child_signals.Start();

  stop_signals.async_wait([&](const std::error_code& e, int signo) {
    if (e) return;
    log->info("signal {} received: stopping {} VM(s)", signo, runners.size());
    systemd.Stopping();
    operations.Stop();
    auto remaining = std::make_shared<size_t>(runners.size());
    control.Stop();
    if (listener) listener->Close();
    peer_server.Close();
    auto all_done = [&] {
      watchdog.Stop();
      systemd.Close();
      child_signals.Stop();
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
  log->info("node '{}' stopped (event loop: {} stall(s) over {} ms, the longest tick delay {} ms)",
            config.node.name, watchdog.meter().stalls(), LoopWatchdog::kThreshold.count(),
            watchdog.meter().worst().count());
  return 0;
}

}  // namespace ft::daemon
