// Fakes of the per-VM controller's ports (ftd/vm/ports.h, go_live.h) and a clock the test
// steps by hand: the roles' pure parts run against them in milliseconds, with no QEMU,
// socket or timer. Each fake records what was done to it, in order.
#pragma once

#include <spdlog/logger.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "go_live.h"
#include "ports.h"
#include "vm_log.h"

namespace ft::daemon::testing {

class FakeTime : public TimeSource {
 public:
  SteadyTime Now() const override { return now_; }
  void Advance(std::chrono::milliseconds d) { now_ += d; }

 private:
  SteadyTime now_ = SteadyTime{} + std::chrono::hours(1);
};

// The authority as the arbiter behaves towards a role, without a claim store: a connected
// peer protects a waiting copy, a lost one starts a claim (failover on) or leaves the copy
// alone (off). `calls` lists what the role told it.
class FakeAuthority : public Authority {
 public:
  arbiter::FtState state() const override { return state_; }
  bool on() const override { return failover_on; }
  void PeerConnected() override {
    calls.push_back("PeerConnected");
    if (state_ == arbiter::FtState::kWaitingForPeer) state_ = arbiter::FtState::kProtected;
  }
  void PeerLost(const std::string& why) override {
    calls.push_back("PeerLost: " + why);
    state_ = failover_on ? arbiter::FtState::kArbitrating : arbiter::FtState::kUnprotected;
  }
  void CaughtUp() override { calls.push_back("CaughtUp"); }
  void GiveUpWaiting(const std::string& why) override {
    calls.push_back("GiveUpWaiting: " + why);
    state_ = arbiter::FtState::kArbitrating;
  }
  void CopyEnded(const std::string& why) override {
    calls.push_back("CopyEnded: " + why);
    state_ = arbiter::FtState::kHalted;
  }
  void MarkReplayEnded() override { calls.push_back("MarkReplayEnded"); }
  void MarkSnapshotSaved() override { calls.push_back("MarkSnapshotSaved"); }
  void GoLiveDone(const Status& s) override {
    calls.push_back(s.ok() ? "GoLiveDone: ok" : "GoLiveDone: " + s.ToString());
  }

  void set_state(arbiter::FtState s) { state_ = s; }
  bool failover_on = true;
  std::vector<std::string> calls;

 private:
  arbiter::FtState state_ = arbiter::FtState::kWaitingForPeer;
};

// The tap and the flush shim: the test says what QEMU has written and ftd has read. The vCPU
// is held, as by the shim, while the log written is past a non-zero limit.
class FakeRecordLog : public RecordLog {
 public:
  uint64_t read_bytes() const override { return read_bytes_; }
  uint64_t read_icount() const override { return read_icount_; }
  uint64_t recent_max_span() const override { return span; }
  void PauseReading() override { reading = false; }
  void ResumeReading() override { reading = true; }
  std::optional<uint64_t> written_bytes() override {
    return mapped ? std::optional<uint64_t>(written_bytes_) : std::nullopt;
  }
  std::optional<uint64_t> written_icount() override {
    return mapped ? std::optional<uint64_t>(written_icount_) : std::nullopt;
  }
  void SetIcountLimit(uint64_t l) override { limit = l; }
  bool vcpu_held() override { return limit != 0 && written_icount_ > limit; }

  // QEMU wrote and ftd read the log up to here.
  void Wrote(uint64_t bytes, uint64_t icount) {
    written_bytes_ = bytes;
    written_icount_ = icount;
  }
  void Read(uint64_t bytes, uint64_t icount) {
    read_bytes_ = bytes;
    read_icount_ = icount;
  }

  bool mapped = true, reading = true;
  uint64_t span = 0, limit = 0;

 private:
  uint64_t read_bytes_ = 0, read_icount_ = 0, written_bytes_ = 0, written_icount_ = 0;
};

class FakeLink : public BackupLink {
 public:
  void SendLog(uint64_t offset, std::string_view bytes) override {
    sent.emplace_back(offset, std::string(bytes));
  }
  void Close() override { closed = true; }
  // Every byte sent, in order, checked to be contiguous from `from`.
  std::string Bytes(uint64_t from = 0) const {
    std::string all;
    for (const auto& [offset, bytes] : sent) {
      if (offset != from + all.size()) return "<gap at " + std::to_string(offset) + ">";
      all += bytes;
    }
    return all;
  }
  std::vector<std::pair<uint64_t, std::string>> sent;
  bool closed = false;
};

class FakeGate : public OutputGate {
 public:
  void Release(uint64_t acked) override { released.push_back(acked); }
  std::vector<uint64_t> released;
};

class FakeReplay : public ReplayProgress {
 public:
  bool started() const override { return started_; }
  bool caught_up() const override { return replayed_ >= received_; }
  bool ended() const override { return ended_; }
  uint64_t received_icount() const override { return received_; }
  uint64_t replayed_icount() const override { return replayed_; }
  uint64_t break_icount() const override { return received_; }
  bool started_ = true, ended_ = false;
  uint64_t received_ = 0, replayed_ = 0;
};

// Going live's steps: each is recorded when it starts and completes when the test says so.
class FakeGoLiveSteps : public GoLiveSteps {
 public:
  Status WriteWentLiveRecord(uint64_t epoch) override {
    steps.push_back("went-live record, epoch " + std::to_string(epoch));
    return record_status;
  }
  void ReplayToEnd(std::function<void(Result<uint64_t>)> done) override {
    steps.push_back("replay to end");
    replayed = std::move(done);
  }
  void SaveSnapshot(std::function<void(Status)> done) override {
    steps.push_back("savevm");
    saved = std::move(done);
  }
  void StopReplayer(std::function<void()> done) override {
    steps.push_back("stop replayer");
    stopped = std::move(done);
  }
  void StartLiveCopy(std::function<void(Status)> done) override {
    steps.push_back("start live copy");
    started = std::move(done);
  }
  std::vector<std::string> steps;
  Status record_status;
  std::function<void(Result<uint64_t>)> replayed;
  std::function<void(Status)> saved;
  std::function<void()> stopped;
  std::function<void(Status)> started;
};

// A VmLog whose lines go nowhere.
inline VmLog QuietLog(const std::string& vm = "web1") {
  return VmLog(std::make_shared<spdlog::logger>("fake-" + vm), vm);
}

}  // namespace ft::daemon::testing
