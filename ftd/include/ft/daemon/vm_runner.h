// Runs one VM's QEMU under ftd: directories, spawn, QMP handshake, exit detection, orderly
// stop (QMP quit -> SIGTERM -> SIGKILL) and removal of its runtime files.
// All methods run on the daemon's single io_context thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ft/daemon/config.h"
#include "ft/daemon/vm_status_enums.h"
#include "ft/domain/vm_spec.h"
#include "ft/replay/qemu_command.h"
#include "ft/status.h"

namespace ft::replay {
class GuestRam;
class QmpClient;
}  // namespace ft::replay

namespace asio {
class io_context;
}

namespace ft::daemon {

// How this QEMU runs: plain, or one side of lockstep.
struct RunOptions {
  replay::RunMode mode = replay::RunMode::kPlain;
  std::string rr_file;                 // record/replay log (a FIFO); rr modes only
  std::vector<std::string> extra_env;  // e.g. the flush shim for a recorder
  bool start_paused = false;           // -S (a replayer waits for its first break)
  // rr modes: attach the VM-state drive (paths().vm_state_drive), created empty here unless
  // `loadvm` or a replay's `rrsnapshot` names a snapshot in it to start from. Its owner
  // removes it when done.
  bool vm_state_drive = false;
  std::string loadvm;
  // rr modes: a recorder saves its starting point under this name; a replayer starts from
  // it (re-protection, docs/design.md).
  std::string rrsnapshot;
  // rr modes: the guest's RAM lives in this memory file, which the role holds across QEMU
  // processes (go-live hands the replayer's to the recording QEMU). Null: QEMU's own RAM.
  std::shared_ptr<replay::GuestRam> guest_ram;
  // `loadvm` holds no RAM (saved with x-ignore-shared): it is already in guest_ram.
  bool loadvm_without_ram = false;
};

class VmRunner {
 public:
  VmRunner(asio::io_context& io, const NodeConfig& node, domain::VmSpec spec);
  ~VmRunner();
  VmRunner(const VmRunner&) = delete;
  VmRunner& operator=(const VmRunner&) = delete;

  // Spawns QEMU; the QMP handshake completes asynchronously. An error here means nothing
  // was started and nothing is left behind. When qemu-img must run first (stale ft
  // snapshots, a new VM-state drive) it runs on a worker thread and QEMU is spawned after it,
  // back on the event loop; a failure there is reported through OnFailed.
  Status Start(RunOptions options = {});
  // QMP is up (state running): the owner may now use qmp().
  void OnRunning(std::function<void()> fn);
  // QEMU ended or failed without Stop() being asked for; `why` says how.
  void OnFailed(std::function<void(const std::string& why)> fn);
  // QEMU will end by itself, for `why` (a replayer fed its log's END). A clean exit after
  // this is the end of a run, not a failure: logged as such, the runner ends stopped with no
  // last error, and OnFailed still hears of it. An exit that is not clean is still a failure.
  void ExpectExit(std::string why);
  // ftd's QMP connection to this QEMU (null before Start).
  std::shared_ptr<replay::QmpClient> qmp() const;
  // Stops QEMU in order and removes the runtime files; `done` runs once it is gone.
  void Stop(std::function<void()> done);
  // Called on SIGCHLD: notices a QEMU that ended and says why.
  void OnChildSignal();

  VmState state() const;
  int qemu_pid() const;                      // 0 when no QEMU runs
  std::chrono::milliseconds uptime() const;  // since QEMU was spawned; 0 when not running
  const std::string& last_error() const;     // why the VM failed, "" otherwise
  const std::string& name() const;
  const VmPaths& paths() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace ft::daemon
