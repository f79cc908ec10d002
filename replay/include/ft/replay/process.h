// The process supervisor: start a child (QEMU), learn when and why it ended, stop it with a
// grace period. Children die with ftd (PR_SET_PDEATHSIG), so a killed daemon leaves no
// orphan QEMU. Exit detection is poll-based (TryReap); the daemon calls it on SIGCHLD.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ft/status.h"

namespace ft::replay {

struct ExitStatus {
  bool signaled = false;
  int code = 0;    // exit code when !signaled
  int signal = 0;  // terminating signal when signaled

  bool clean() const { return !signaled && code == 0; }
  // "exited with code 1", "killed by signal 9 (SIGKILL)"
  std::string Describe() const;
};

struct SpawnOptions {
  // stdout and stderr of the child are appended here ("" = inherit ftd's).
  std::string output_path;
  // Kill the child with SIGKILL when the spawning thread of ftd dies.
  bool die_with_parent = true;
  // Extra environment entries "K=V" added to ftd's environment (e.g. LD_PRELOAD).
  std::vector<std::string> extra_env;
  // The child's scheduling nice value (e.g. 0 for a QEMU spawned by an ftd that raised its
  // own priority); nullopt = inherit.
  std::optional<int> nice;
  // Descriptors of ftd (opened close-on-exec) that the child inherits under the same
  // numbers, e.g. the guest's RAM file (GuestRam). No other descriptor is inherited.
  std::vector<int> inherit_fds;
};

class ChildProcess {
 public:
  // Forks and execs argv[0] (searched in PATH). Fails with a clear message if the program
  // cannot be executed (not found, not executable), detected before this returns.
  static Result<std::unique_ptr<ChildProcess>> Spawn(const std::vector<std::string>& argv,
                                                     const SpawnOptions& options);

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // A still-running child is killed (SIGKILL) and reaped: no zombie, no orphan.
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  const std::string& program() const { return program_; }
  bool running() const { return !exit_.has_value(); }
  const std::optional<ExitStatus>& exit_status() const { return exit_; }

  // Non-blocking: reaps the child if it has ended.
  std::optional<ExitStatus> TryReap();

  // Blocks up to `timeout` for the child to end.
  std::optional<ExitStatus> WaitFor(std::chrono::milliseconds timeout);

  // Sends `sig` to the child (no-op once it has been reaped).
  void Signal(int sig);

  // SIGTERM, wait up to `grace`, then SIGKILL and reap. Always returns an exit status.
  ExitStatus Terminate(std::chrono::milliseconds grace);

 private:
  ChildProcess(pid_t pid, std::string program) : pid_(pid), program_(std::move(program)) {}

  pid_t pid_;
  std::string program_;
  std::optional<ExitStatus> exit_;
};

// Last `max_bytes` of a file, trimmed to whole lines; "" if unreadable. For error messages
// that quote what QEMU printed before it died.
std::string TailOfFile(const std::string& path, size_t max_bytes = 2048);

}  // namespace ft::replay
