// ftd's config file: one [node] section (this hypervisor) and one [vm NAME] section per VM.
// Parsing is pure (text -> Config, every error names file:line, section and key);
// CheckConfigFiles then checks what the config names on disk (kernel, images, QEMU).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ft/replay/vm_spec.h"
#include "ft/status.h"

namespace ft::daemon {

struct NodeConfig {
  std::string name;                        // this hypervisor's name (default: hostname)
  std::string state_dir = "/var/lib/ftd";  // per-VM consoles, logs, persistent state
  std::string run_dir = "/run/ftd";        // sockets and pid files; removed at shutdown
  std::string control_socket;              // ftctl's socket; default <run_dir>/ftd.sock
  std::string log_level = "info";
};

struct Config {
  std::string source;  // the file it came from, for messages
  NodeConfig node;
  std::vector<replay::VmSpec> vms;
};

// `base_dir` resolves relative paths (the config file's directory).
Result<Config> ParseConfig(std::string_view text, const std::string& source,
                           const std::string& base_dir);

// Checks the files and programs the config names: kernel/initrd readable, disk images
// readable and writable and of the declared format, QEMU executable. Names VM and key.
Status CheckConfigFiles(const Config& config);

// Reads, parses and checks `path`.
Result<Config> LoadConfig(const std::string& path);

}  // namespace ft::daemon
