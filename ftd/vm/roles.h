// Internal to ftd: the three ManagedVm roles and what they share.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>

#include "ft/channel/session.h"
#include "ft/daemon/managed_vm.h"
#include "ft/daemon/vm_runner.h"
#include "ft/net/guest_nic.h"
#include "pacing.h"
#include "ports.h"

namespace ft::daemon {

std::unique_ptr<ManagedVm> MakePlainVm(asio::io_context& io, const NodeConfig& node,
                                       const domain::VmSpec& spec);
std::unique_ptr<ManagedVm> MakePrimaryVm(asio::io_context& io, const NodeConfig& node,
                                         const domain::VmSpec& spec);
// A backup that went live continues as this: a recording primary started from the go-live
// snapshot, running alone in the epoch it won, its NIC open and announced on this host.
struct LiveStart {
  std::string snapshot;  // in the VM-state drive (replay::kGoLiveSnapshot)
  // The replayer's RAM file: `snapshot` holds the device state only (x-ignore-shared) and the
  // guest's RAM is in here. Null: the snapshot holds the RAM.
  std::shared_ptr<replay::GuestRam> guest_ram;
  std::optional<uint32_t> guest_ipv4;  // learnt by the backup's NIC, for the announcement
  std::string why;                     // for status: why this copy runs alone
  // QEMU runs from the snapshot (ok) or could not start; called once.
  std::function<void(Status)> on_started;
};
std::unique_ptr<ManagedVm> MakeLivePrimaryVm(asio::io_context& io, const NodeConfig& node,
                                             const domain::VmSpec& spec, LiveStart live);
// Re-protection: the primary that continues a copy saved by SaveForReprotect. Its QEMU
// starts from kReprotectSnapshot and saves its starting point as kBaseSnapshot (what the
// new backup starts from); its gate is closed and it waits for BeginProtection.
struct ReprotectStart {
  std::optional<uint32_t> guest_ipv4;  // for the announcement on the new TAP
  // QEMU runs from the snapshot (ok) or could not start; called once.
  std::function<void(Status)> on_started;
};
std::unique_ptr<ManagedVm> MakeReprotectingPrimaryVm(asio::io_context& io, const NodeConfig& node,
                                                     const domain::VmSpec& spec,
                                                     ReprotectStart start);
// A backup whose replayer starts from kBaseSnapshot (in its VM-state drive, already in
// place) instead of booting: the backup of a running VM. `replica_digest` is its received
// disks' digest, taken before kBaseSnapshot was added to them.
struct BackupFromSnapshot {
  std::string replica_digest;
};
std::unique_ptr<ManagedVm> MakeBackupVm(asio::io_context& io, const NodeConfig& node,
                                        const domain::VmSpec& spec,
                                        std::optional<BackupFromSnapshot> from = std::nullopt);

// The rr log version of `qemu_binary` (REPLAY_VERSION), probed by running it once (about a
// second) and cached for the daemon's life. The daemon probes its node's QEMU before its event
// loop runs, so that protecting a VM at run time never blocks the loop (a peer would declare
// this host dead after heartbeat_timeout_ms).
Result<uint32_t> RrVersionOf(const NodeConfig& node, const std::string& qemu_binary);

// This node's handshake identity for `spec`: config digest, this QEMU's rr log version
// (probed once per binary), the pair's epoch (state_dir/vms/NAME/epoch; 1 when new), whether
// the node has a claim store (failover; the role fills store_id from its store) and,
// with `digest_replicas`, the sha256 of the disk images now (before QEMU runs). A copy
// going live skips it: it never shakes hands, and hashing disks would delay it.
Result<channel::Identity> LocalIdentity(const NodeConfig& node, const domain::VmSpec& spec,
                                        bool digest_replicas = true);

// Work that may take longer than a millisecond (hashing, copying, qemu-img) runs on a worker
// thread; what it returns is handed back on `io`'s thread. `work` returns the closure to
// run there. If this object is destroyed first, that closure is dropped, not run.
class BackgroundWork {
 public:
  BackgroundWork(asio::io_context& io, std::function<std::function<void()>()> work);
  ~BackgroundWork();
  BackgroundWork(const BackgroundWork&) = delete;
  BackgroundWork& operator=(const BackgroundWork&) = delete;

 private:
  struct Slot;
  std::shared_ptr<Slot> slot_;
};

// `work()` on a worker thread, then `done(result)` on `io`'s thread.
template <typename T>
std::unique_ptr<BackgroundWork> RunInBackground(asio::io_context& io, std::function<T()> work,
                                                std::function<void(T)> done) {
  return std::make_unique<BackgroundWork>(
      io, [work = std::move(work), done = std::move(done)]() -> std::function<void()> {
        auto result = std::make_shared<T>(work());
        return [done, result] { done(std::move(*result)); };
      });
}

// Hashes a VM's disk images (disk::ReplicaSetDigest) on a worker thread and posts the
// digest back to `io`: reading a multi-GiB disk on the event loop would stall every VM's
// heartbeats. If this object is destroyed first, the result is dropped.
class BackgroundDigest {
 public:
  BackgroundDigest(asio::io_context& io, domain::VmSpec spec,
                   std::function<void(Result<std::string>)> done);

 private:
  std::unique_ptr<BackgroundWork> work_;
};

// Records `epoch` as the VM's current one (state_dir/vms/NAME/epoch), atomically: after a
// won claim, before the winner acts on it.
Status SaveEpoch(const NodeConfig& node, const std::string& vm, uint64_t epoch);

channel::Options ChannelOptionsFrom(const ChannelConfig& config);

// The VM's NIC when ftd serves it (nic = bridge), listening before QEMU starts; null for
// other NIC backends. `bridge` false: no TAP (a backup, whose guest's frames never leave).
// FTD_TRACE_GATE=PATH writes one line per released frame (docs/benchmarks.md).
Result<std::shared_ptr<net::GuestNic>> ServeNic(asio::io_context& io, const VmRunner& runner,
                                                const domain::VmSpec& spec, net::Outbound outbound,
                                                std::function<Result<uint64_t>()> log_position = {},
                                                std::optional<uint32_t> guest_ipv4 = {});

// Runner fields of a report (name, state, mode, pid, uptime, files, last error).
void FillRunnerReport(const VmRunner& runner, const char* mode, VmReport& report);

// Log bytes per second over a sliding window.
class RateMeter {
 public:
  void Add(uint64_t total_bytes);
  double PerSecond() const;

 private:
  std::deque<std::pair<std::chrono::steady_clock::time_point, uint64_t>> samples_;
};

// Milliseconds since `t`, or -1 if it never happened (a default time point).
inline int64_t MsSince(SteadyTime t) { return MsBetween(t, std::chrono::steady_clock::now()); }

}  // namespace ft::daemon
