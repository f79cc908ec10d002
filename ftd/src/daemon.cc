#include "ft/daemon/daemon.h"

#include <signal.h>

#include <asio.hpp>
#include <filesystem>

#include "ft/daemon/vm_runner.h"
#include "ft/log.h"

namespace ft::daemon {

int RunDaemon(const Config& config) {
  auto log = Logger("ftd");
  // Writes to a peer that went away must be errors, not a signal that kills the daemon.
  signal(SIGPIPE, SIG_IGN);

  asio::io_context io;
  asio::signal_set stop_signals(io, SIGTERM, SIGINT);
  asio::signal_set child_signals(io, SIGCHLD);

  std::error_code ec;
  bool made_run_dir = !std::filesystem::exists(config.node.run_dir, ec);
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
