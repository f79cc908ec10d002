#include "go_live.h"

#include "ft/replay/vm_state_drive.h"

namespace ft::daemon {

void GoLive::Run(uint64_t epoch, const Status& ready) {
  if (cancelled_ || started_) return;
  started_ = true;
  if (!ready.ok()) return Fail(ready);
  // Going live goes on if the record cannot be written: the VM matters more than the guard.
  if (Status s = steps_.WriteWentLiveRecord(epoch); !s.ok()) {
    vlog_.error("{}; a peer's enable could write over this copy's disks", s.ToString());
  }
  steps_.ReplayToEnd([this](Result<uint64_t> end) { OnReplayEnded(std::move(end)); });
}

void GoLive::OnReplayEnded(Result<uint64_t> end) {
  if (cancelled_ || finished_) return;
  if (!end.ok()) return Fail(end.status());
  authority_.MarkReplayEnded();
  vlog_.info("replayer paused at icount {}, the end of the primary's log; saving snapshot '{}'",
             *end, replay::kGoLiveSnapshot);
  steps_.SaveSnapshot([this](Status saved) { OnSnapshotSaved(saved); });
}

void GoLive::OnSnapshotSaved(const Status& saved) {
  if (cancelled_ || finished_) return;
  if (!saved.ok()) return Fail(saved);
  authority_.MarkSnapshotSaved();
  steps_.StopReplayer([this] { OnReplayerStopped(); });
}

void GoLive::OnReplayerStopped() {
  if (cancelled_ || finished_) return;
  steps_.StartLiveCopy([this](Status started) { OnLiveCopyStarted(started); });
}

void GoLive::OnLiveCopyStarted(const Status& started) {
  if (finished_) return;  // a copy that failed to start can say so twice
  if (!started.ok()) return Fail(started);
  finished_ = true;
  live_ = true;
  authority_.GoLiveDone(Status::Ok());
  if (on_live_) on_live_();
}

void GoLive::Fail(const Status& why) {
  if (finished_) return;
  finished_ = true;
  vlog_.error("going live failed: {}", why.ToString());
  authority_.GoLiveDone(why);  // halts through the arbiter
}

}  // namespace ft::daemon
