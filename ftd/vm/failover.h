// Internal to ftd: one protected VM's authority, the glue between a role (PrimaryVm or
// BackupVm) and the pure VmArbiter (arbiter/), which alone decides whether the copy may start,
// open its output gate, go live or must halt (docs/design.md, "Never two live copies"). It
// reads the claim store and runs claims off the daemon's thread (a hung NFS mount must not
// stop the event loop), retries them on a timer, records a won epoch, and keeps the times
// each step was reached for `ftctl status` and the failover benchmark.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "ft/arbiter/vm_arbiter.h"
#include "ft/daemon/config.h"
#include "ft/daemon/managed_vm.h"
#include "ports.h"

namespace asio {
class io_context;
}

namespace ft::daemon {

// What the arbiter's decisions do to the VM; the role provides them.
struct FailoverHooks {
  std::function<void(uint64_t epoch)> start_copy;  // the store allows this copy to run
  std::function<void()> open_gate;                 // primary: won; run alone, output released
  std::function<void(uint64_t epoch)> go_live;     // backup: won and caught up
  std::function<void(const std::string& why)> halt;
};

// For start-up log lines: "through '<store>'" or "off (no shared_storage)".
std::string DescribeFailover(const NodeConfig& node);

class Failover : public Authority, public std::enable_shared_from_this<Failover> {
 public:
  // Without shared_storage failover is off: the copy starts at once, a primary that loses its
  // backup runs on alone and a backup never goes live (the handshake checks that the peer
  // has no claim store either).
  static std::shared_ptr<Failover> Create(asio::io_context& io, const NodeConfig& node,
                                          const std::string& vm, arbiter::Role role, uint64_t epoch,
                                          FailoverHooks hooks);
  ~Failover() override;

  bool on() const override;  // a claim store is configured
  // Reads the claim store (failover on), then calls start_copy, or leaves the copy stale.
  void Start();
  void CheckStoreAgain();
  void PeerConnected() override;
  void PeerLost(const std::string& why) override;
  void CaughtUp() override;
  void GiveUpWaiting(const std::string& why) override;
  Status TurnFtOff(const std::string& why);
  void Stopping();
  void CopyEnded(const std::string& why) override;
  // Backup: going live ended (the recording QEMU runs from the snapshot, or it failed).
  void GoLiveDone(const Status& status) override;
  // Backup: the replayer reached the end of the received log (the go-live point).
  void MarkReplayEnded() override;
  void MarkSnapshotSaved() override;

  const arbiter::VmArbiter& arbiter() const;
  arbiter::FtState state() const override;
  uint64_t epoch() const;
  const std::string& note() const;
  void FillReport(VmReport& report) const;

 private:
  struct Impl;
  explicit Failover(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace ft::daemon
