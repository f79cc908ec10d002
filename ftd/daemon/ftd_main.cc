// ftd: the fault-tolerance daemon. One per hypervisor; roles are per VM.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "ft/daemon/config.h"
#include "ft/daemon/daemon.h"
#include "ft/log.h"

namespace {
// Exit codes: 0 clean stop, 1 runtime failure, 2 bad command line or config.
constexpr int kExitConfig = 2;
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ftd - fault-tolerant VM replication daemon (QEMU record/replay)"};
  std::string config_path = "/etc/ftd/ftd.conf";
  std::string log_level;
  bool check_only = false;
  app.add_option("-c,--config", config_path, "config file")->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error (overrides config)");
  app.add_flag("--check-config", check_only, "validate the config file and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitConfig;
  }

  auto log = ft::Logger("config");
  auto config = ft::daemon::LoadConfig(config_path);
  if (!config.ok()) {
    log->error("{}", config.status().message());
    std::fprintf(stderr, "ftd: refusing to start: %s\n", config.status().message().c_str());
    return kExitConfig;
  }
  std::string level = log_level.empty() ? config->node.log_level : log_level;
  if (!ft::SetLogLevel(level)) {
    std::fprintf(stderr, "ftd: --log-level '%s' is not one of trace, debug, info, warn, error\n",
                 level.c_str());
    return kExitConfig;
  }
  if (check_only) {
    std::printf("%s: ok (node '%s', %zu vm(s))\n", config_path.c_str(), config->node.name.c_str(),
                config->vms.size());
    return 0;
  }
  return ft::daemon::RunDaemon(*config);
}
