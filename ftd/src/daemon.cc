#include "ft/daemon/daemon.h"

#include <signal.h>

#include <asio.hpp>
#include <filesystem>

#include <fmt/format.h>

#include "ft/daemon/control_socket.h"
#include "ft/daemon/vm_runner.h"
#include "ft/log.h"
#include "ft/proto/control.pb.h"

namespace ft::daemon {

namespace {

proto::VmStatus DescribeVm(const VmRunner& runner) {
  proto::VmStatus s;
  s.set_name(runner.name());
  s.set_state(VmStateName(runner.state()));
  s.set_mode("plain");
  s.set_qemu_pid(runner.qemu_pid());
  s.set_uptime_ms(static_cast<uint64_t>(runner.uptime().count()));
  s.set_console_log(runner.paths().console_log);
  s.set_monitor_socket(runner.qemu_pid() ? runner.paths().monitor_socket : "");
  s.set_last_error(runner.last_error());
  return s;
}

// Typed requests from ftctl -> a typed response. Never throws, never blocks.
std::string HandleControlRequest(const Config& config,
                                 const std::vector<std::unique_ptr<VmRunner>>& runners,
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
    const VmRunner* found = nullptr;
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

  asio::io_context io;
  asio::signal_set stop_signals(io, SIGTERM, SIGINT);
  asio::signal_set child_signals(io, SIGCHLD);

  std::error_code ec;
  bool made_run_dir = !std::filesystem::exists(config.node.run_dir, ec);
  std::filesystem::create_directories(config.node.run_dir, ec);
  std::filesystem::create_directories(
      std::filesystem::path(config.node.control_socket).parent_path(), ec);
  std::vector<std::unique_ptr<VmRunner>> runners;
  int started = 0;
  for (const auto& spec : config.vms) {
    auto runner = std::make_unique<VmRunner>(io, config.node, spec);
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
  log->info("node '{}' up: {} of {} VM(s) started; state {}, runtime {}", config.node.name, started,
            config.vms.size(), config.node.state_dir, config.node.run_dir);

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
    auto remaining = std::make_shared<size_t>(runners.size());
    control.Stop();
    auto all_done = [&] {
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
