// Two real ftd processes protecting one guest VM on this machine: a backup (replays) and a
// primary (records), each with its own state and run dirs and config, sharing a channel
// key; optionally a DelayProxy between them. For integration tests and benchmarks.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "delay_proxy.h"
#include "ftd_instance.h"
#include "json_fields.h"
#include "lab.h"

namespace ft::testing {

struct LockstepOptions {
  GuestVmOptions vm;  // the same VM definition on both hosts
  int max_lag_ms = 2000;
  int heartbeat_interval_ms = 100;
  int heartbeat_timeout_ms = 1000;
  std::chrono::milliseconds channel_delay{0};  // > 0: relay the channel through a DelayProxy
  std::vector<std::string> backup_env;         // e.g. FTD_TRACE_LOG_RECEIPTS=...
  std::vector<std::string> primary_env;        // e.g. FTD_TRACE_GATE=...
  // The CPUs the primary's and the backup's ftd (and all they spawn) run on: `taskset -c`
  // lists from LayoutsToRun (core_layout.h); "" = any CPU.
  std::string primary_cpus, backup_cpus;
  // Where the backup's host directory (state, run dir, its copy of the data disk) is made;
  // "" = the system's temp dir, as the primary's. Another filesystem gives the lab's host B
  // storage of its own: otherwise both hosts' images share one disk, and the backup's
  // replayed flushes queue behind the primary's in the same journal.
  std::string backup_parent_dir;
  // Run the pair in the network lab: the primary's ftd on host A, the backup's on host B,
  // the channel over the lab's channel network, the VM's NIC served by ftd on br0 (the
  // DelayProxy, if any, runs inside host A). Null: both on loopback, QEMU user networking.
  Lab* lab = nullptr;
  // Both nodes' shared_storage (a claim store: failover on). Empty: failover off.
  std::string shared_storage;
  // The backup's node's shared_storage when it must differ from the primary's (tests of the
  // handshake's refusals): "" turns failover off on the backup's host only.
  std::optional<std::string> backup_shared_storage;
  // [node] max_unacked_mib on both hosts (how much log a primary holds for a backup that
  // has not connected before it runs on alone); 0: ftd's default.
  int max_unacked_mib = 0;
  // [node] reprotect on both hosts. Tests of what a failover leaves (a halted or stale copy,
  // a copy running unprotected) use manual, so that no re-protection changes it while they
  // look; the re-protection tests use auto, ftd's default.
  std::string reprotect = "manual";
  // In the lab: each host also names the other as its peer and listens on its own channel
  // address, as operators set hosts up (needed for anything the live copy starts towards
  // the other host, such as a re-protection). Otherwise the primary only connects and the
  // backup only listens.
  bool both_ways = false;
  // The backup's VM definition when it must differ (tests of the handshake's refusals).
  std::optional<GuestVmOptions> backup_vm;
  // Runs on the backup's instance after its config (and data disk copy) is written, before
  // its ftd starts: e.g. to make its replica differ.
  std::function<ft::Status(FtdInstance& backup)> prepare_backup;
};

class LockstepPair {
 public:
  // Starts the backup's ftd, then the primary's.
  static Result<std::unique_ptr<LockstepPair>> Start(const LockstepOptions& options);
  ~LockstepPair();

  FtdInstance& primary() { return *primary_; }
  FtdInstance& backup() { return *backup_; }
  const std::string& vm() const { return options_.vm.name; }
  DelayProxy* proxy() { return proxy_.get(); }

  // The VM's status from `ftctl status VM --json` on one side (FtdInstance::StatusJson).
  Result<nlohmann::json> Status(FtdInstance& side);
  // Polls until the side's ft_state is `state`.
  ft::Status WaitForFtState(FtdInstance& side, proto::VmFtState state,
                            std::chrono::milliseconds timeout);
  // Stops the primary's ftd cleanly (its QEMU quits, the log's end reaches the backup) and
  // waits until the backup's replay has run to the end of the log.
  ft::Status StopPrimaryAndDrain(std::chrono::milliseconds timeout);

  std::string primary_console() const;
  std::string backup_console() const;

 private:
  explicit LockstepPair(LockstepOptions o) : options_(std::move(o)) {}
  LockstepOptions options_;
  std::unique_ptr<FtdInstance> backup_, primary_;
  std::unique_ptr<DelayProxy> proxy_;
};

// A line-by-line comparison for failure messages: where two consoles first differ.
std::string FirstDifference(const std::string& a, const std::string& b);

}  // namespace ft::testing
