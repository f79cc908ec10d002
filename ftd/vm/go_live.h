// Going live, the backup's half of a failover, as a sequence without QEMU or timers. The
// authority (arbiter/) decided this copy won the next epoch and the replay caught up with
// the received log; then, in this order (docs/design.md, "Failover"):
//   1. the went-live record (vm_records.h): from here the replicas are this VM's disks and
//      no peer's enable may write over them;
//   2. the replayer runs to the end of the received log and pauses there;
//   3. savevm: the VM at that point goes into the VM-state drive;
//   4. the replaying QEMU quits (its NIC closes first: a replayed guest never sends);
//   5. a recording QEMU starts from the snapshot and takes the VM's network on this host.
// Each step starts only once the one before it succeeded. The first that fails ends the
// sequence and the authority halts this copy; a stop (ftd shuts down) lets no later step
// start. BackupVm gives the real steps; the unit tests give fakes.
#pragma once

#include <cstdint>
#include <functional>

#include "ports.h"
#include "vm_log.h"

namespace ft::daemon {

class GoLiveSteps {
 public:
  virtual ~GoLiveSteps() = default;
  virtual Status WriteWentLiveRecord(uint64_t epoch) = 0;
  // `done` gets the icount where the replayer paused.
  virtual void ReplayToEnd(std::function<void(Result<uint64_t>)> done) = 0;
  virtual void SaveSnapshot(std::function<void(Status)> done) = 0;
  virtual void StopReplayer(std::function<void()> done) = 0;
  virtual void StartLiveCopy(std::function<void(Status)> done) = 0;
};

class GoLive {
 public:
  // The steps' callbacks must not be called once this object is gone (BackupVm's drop
  // them with the role).
  GoLive(GoLiveSteps& steps, Authority& authority, const VmLog& vlog)
      : steps_(steps), authority_(authority), vlog_(vlog) {}

  // After the authority heard the live copy runs: the role says so in status and records.
  void OnLive(std::function<void()> fn) { on_live_ = std::move(fn); }

  // Goes live in `epoch` (the one just won). `ready` is not ok when there is nothing to go
  // live from (the replayer never started): the authority hears it at once.
  void Run(uint64_t epoch, const Status& ready);
  // ftd stops: a step under way finishes, but no later one starts.
  void Cancel() { cancelled_ = true; }

  bool running() const { return started_ && !finished_; }
  bool live() const { return live_; }

 private:
  void OnReplayEnded(Result<uint64_t> end);
  void OnSnapshotSaved(const Status& saved);
  void OnReplayerStopped();
  void OnLiveCopyStarted(const Status& started);
  void Fail(const Status& why);

  GoLiveSteps& steps_;
  Authority& authority_;
  const VmLog& vlog_;
  std::function<void()> on_live_;
  bool started_ = false, cancelled_ = false, finished_ = false, live_ = false;
};

}  // namespace ft::daemon
