// ftd's config file: one [node] section (this hypervisor) and one [vm NAME] section per VM.
// Parsing is pure (text -> Config, every error names file:line, section and key);
// CheckConfigFiles then checks what the config names on disk (kernel, images, QEMU).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ft/daemon/vm_status_enums.h"
#include "ft/domain/vm_spec.h"
#include "ft/status.h"

namespace ft::daemon {

// The logging channel between this node and its peer (docs/design.md, rule 1).
struct ChannelConfig {
  std::string listen_host;  // where a backup accepts its primary; "" = no listener
  uint16_t listen_port = 0;
  std::string peer_host;  // where a primary finds its backup
  uint16_t peer_port = 0;
  std::string key_file;  // shared secret, same on both hosts, mode 0600
  std::string key;       // its contents (filled by LoadConfig)
  int heartbeat_interval_ms = 100;
  int heartbeat_timeout_ms = 1000;
  // Lag bound: when the backup's replay is this far behind the primary (guest time), the
  // primary is paced until it catches up.
  int max_lag_ms = 2000;
  // Log held for a backup that has not received it yet (e.g. before it connects).
  int max_unacked_mib = 64;
};

struct NodeConfig {
  std::string name;                        // this hypervisor's name (default: hostname)
  std::string state_dir = "/var/lib/ftd";  // per-VM consoles, logs, persistent state
  std::string run_dir = "/run/ftd";        // sockets and pid files; removed at shutdown
  std::string control_socket;              // ftctl's socket; default <run_dir>/ftd.sock
  std::string log_level = "info";
  // A directory both hosts mount, made a claim store with `ftctl init-storage` (the
  // test-and-set that decides who goes live, design rule 3). "": failover off -- a primary
  // that loses its backup runs on alone, and a backup never goes live.
  std::string shared_storage;
  // The QEMU that runs VMs turned on at run time (ftctl enable); ftd's patched build in a
  // package (replay/qemu-patches). VMs in this file name theirs with [vm] qemu.
  std::string qemu = "qemu-system-x86_64";
  // A VM that runs unprotected here (after a failover, after the peer returned) gets a new
  // backup on the peer by itself (auto), or only through `ftctl enable VM` (manual).
  bool reprotect_auto = true;
  ChannelConfig channel;
};

struct Config {
  std::string source;  // the file it came from, for messages
  NodeConfig node;
  std::vector<domain::VmSpec> vms;
  std::map<std::string, FtRole> roles;  // by VM name; absent = kOff
  FtRole RoleOf(const std::string& vm) const {
    auto it = roles.find(vm);
    return it == roles.end() ? FtRole::kOff : it->second;
  }
};

// `base_dir` resolves relative paths (the config file's directory).
Result<Config> ParseConfig(std::string_view text, const std::string& source,
                           const std::string& base_dir);

// Checks the files and programs the config names: kernel/initrd readable, disk images
// readable and writable and of the declared format, QEMU executable. Names VM and key.
Status CheckConfigFiles(const Config& config);

// Reads, parses and checks `path`.
Result<Config> LoadConfig(const std::string& path);

// One VM as a [vm NAME] section of ftd.conf (without `ft`): how a VM turned on at run time
// travels (ftctl -> ftd -> the peer ftd) and is kept in the state dir. Paths are absolute.
std::string FormatVmSection(const domain::VmSpec& spec);
// The inverse: exactly one [vm NAME] section, no `ft` key, no [node]. Errors name `source`.
Result<domain::VmSpec> ParseVmSection(std::string_view text, const std::string& source);

// CheckConfigFiles for one VM.
Status CheckVmFiles(const domain::VmSpec& vm);

// Where a VM's files live. state_dir keeps what an operator reads after the fact (console,
// QEMU's output); run_dir holds sockets and pid files and is removed when the VM stops.
struct VmPaths {
  std::string state_dir;       // <node.state_dir>/vms/<name>
  std::string run_dir;         // <node.run_dir>/<name>
  std::string console_log;     // state_dir/console.log
  std::string qemu_log;        // state_dir/qemu.log
  std::string qmp_socket;      // run_dir/qmp.sock: ftd's own QMP connection
  std::string monitor_socket;  // run_dir/monitor.sock: a second QMP monitor for operators
  std::string pid_file;        // run_dir/qemu.pid
  std::string nic_socket;      // run_dir/nic.sock: ftd serves the VM's NIC (nic = bridge)
  std::string vm_state_drive;  // run_dir/vm-state.qcow2: go-live snapshots (rr modes)
};
VmPaths PathsFor(const NodeConfig& node, const std::string& vm_name);

}  // namespace ft::daemon
