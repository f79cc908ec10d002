// Runs a real ftd process for a test: writes its config into a private temp dir, starts it,
// stops it with SIGTERM, and removes the temp dir whatever happened (RAII). Guarantees no
// process it started outlives the test.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ft/replay/process.h"
#include "ft/status.h"

namespace ft::testing {

// Where the build put things (set by CMake for tests).
std::string FtdBinary();
std::string GuestDir();     // vmlinuz, initrd.img, data.qcow2; empty string if not built
std::string GuestKernel();  // vmlinux if the guest build left it, else vmlinuz

std::string FtctlBinary();
// The QEMU protected VMs run on: scripts/build-qemu.sh's build (Debian's 7.2 with ftd's
// record/replay patches) when the build made it, else Debian's qemu-system-x86_64. The
// environment variable FT_TEST_QEMU names another binary (e.g. a build without one patch, to
// show that a test fails without it).
std::string QemuBinary();

struct CommandOutput {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};
// Runs a command to completion (bounded by `timeout`), capturing its output.
CommandOutput RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

// A free TCP port on 127.0.0.1 (bound and released; good enough for a test).
uint16_t FreeLoopbackPort();

// A process's state, its threads' wait channels and (with gdb) their stacks: for a message
// about a process that should have ended.
std::string DescribeProcess(int pid);

struct GuestVmOptions {
  std::string name = "web1";
  uint32_t memory_mib = 256;
  std::string workload = "none";  // ftguest.workload
  uint16_t stream_port = 0;       // host port forwarded to the guest's 7000 (0: none)
  uint16_t records_port = 0;      // host port forwarded to the guest's 7001 (0: none)
  bool data_disk = true;
  // The image the data disk is copied from; empty: the guest build's data.qcow2.
  std::string data_disk_image;
  // Lab networking: the NIC is served by ftd on a TAP on this host bridge, and the guest
  // takes `lab_ip` (e.g. br0, 10.77.0.10/24). Empty: QEMU user networking with forwards.
  std::string bridge;
  std::string lab_ip;
  std::string extra_cmdline;  // appended to the guest kernel's command line
};

class FtdInstance {
 public:
  // Makes a temp dir (state, run, config, a copy of the data disk) in `parent_dir` ("" = the
  // system's temp dir, TMPDIR or /tmp).
  static Result<std::unique_ptr<FtdInstance>> Create(const std::string& label,
                                                     const std::string& parent_dir = "");
  ~FtdInstance();  // SIGKILLs ftd if still running, then removes the temp dir

  // The config text for one guest VM under this instance's dirs.
  std::string GuestVmConfig(const GuestVmOptions& vm);
  Status WriteConfig(const std::string& text);
  // Writes the channel key every test ftd shares to channel_key_path() (mode 0600).
  Status WriteChannelKey();
  std::string channel_key_path() const { return dir_ + "/channel.key"; }
  // `netns`: run ftd inside that network namespace (a lab host).
  Status Start(const std::vector<std::string>& extra_args = {},
               const std::vector<std::string>& extra_env = {}, const std::string& netns = "");
  // Runs ftd, and so everything it spawns, on these CPUs (`taskset -c` syntax, e.g. "1"),
  // from the next Start or Restart on; "" (the default): on any CPU. See core_layout.h.
  void set_cpus(std::string cpus) { cpus_ = std::move(cpus); }
  // SIGTERM and wait; returns how ftd ended.
  Result<replay::ExitStatus> Stop(std::chrono::milliseconds timeout);
  // Starts ftd again after it ended (stopped or killed), with `config_text` as its config and
  // the arguments, environment and namespace of the last Start. Its log goes on in the same
  // file after a line saying so: a host that came back, as its init system restarts ftd.
  Status Restart(const std::string& config_text);

  const std::string& dir() const { return dir_; }
  // The node name in its config: "test-<label>" (the two ftds of a pair must differ).
  const std::string& node_name() const { return node_name_; }
  std::string config_path() const { return dir_ + "/ftd.conf"; }
  std::string state_dir() const { return dir_ + "/state"; }
  std::string run_dir() const { return dir_ + "/run"; }
  std::string console_log(const std::string& vm) const;
  std::string qmp_socket(const std::string& vm) const;
  std::string monitor_socket(const std::string& vm) const;  // the operator's QMP monitor
  std::string pid_file(const std::string& vm) const;
  std::string control_socket() const { return run_dir() + "/ftd.sock"; }
  // Runs ftctl against this instance's control socket.
  CommandOutput Ftctl(const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20));
  std::string ftd_log() const { return dir_ + "/ftd.log"; }
  // The end of ftd's log without its debug lines (QMP and pacing traffic would crowd out the
  // state changes), for failure messages.
  std::string LogTail(size_t max_bytes = 12000) const;
  // The VM's VmStatus from `ftctl status VM --json` (its "vm"; json_fields.h reads it).
  Result<nlohmann::json> StatusJson(const std::string& vm);
  replay::ChildProcess* process() { return ftd_.get(); }

 private:
  FtdInstance(std::string dir, std::string node_name)
      : dir_(std::move(dir)), node_name_(std::move(node_name)) {}
  std::string dir_, node_name_;
  std::unique_ptr<replay::ChildProcess> ftd_;
  std::vector<std::string> start_args_, start_env_;
  std::string start_netns_;
  std::string cpus_;
};

// `config` with `line` (e.g. "max_unacked_mib = 1") added to its [node] section.
std::string WithNodeSetting(const std::string& config, const std::string& line);

}  // namespace ft::testing
