// Internal to ftd: re-protection -- a new backup for a VM that runs unprotected on this host,
// without restarting its guest (docs/design.md, "Re-protection"). One attempt, step by step:
//   1. the peer drops what it has of the VM (the stale copy of a host that returned);
//   2. the VM pauses: stop, savevm kReprotectSnapshot, quit (ManagedVm::SaveForReprotect);
//   3. a new primary continues it from that snapshot and saves its starting point
//      kBaseSnapshot before it runs; its gate is closed from here on;
//   4. the VM-state drive and each disk's contents at kBaseSnapshot go to the peer (sha256
//      checked per file, as for `ftctl enable`);
//   5. the peer starts a backup whose replayer starts from kBaseSnapshot;
//   6. the primary connects; the handshake compares the disks' digest; protected.
// A failure before 2 changes nothing; after 3 the primary runs on unprotected (its authority
// claims the next epoch first) and the peer is told to drop what it received.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "ft/daemon/config.h"
#include "ft/daemon/managed_vm.h"
#include "ft/status.h"

namespace asio {
class io_context;
}

namespace ft::proto {
class PeerRequest;
class PeerResponse;
}  // namespace ft::proto

namespace ft::daemon {

// What an attempt needs from the daemon.
struct ReprotectHost {
  asio::io_context* io = nullptr;
  const NodeConfig* node = nullptr;
  // The VM's copy on this host now, or null.
  std::function<ManagedVm*(const std::string& vm)> find;
  // Stops and drops the VM's current copy (already saved), then puts `next` in its place;
  // `done` runs once that is done.
  std::function<void(std::unique_ptr<ManagedVm> next, std::function<void()> done)> replace;
  // ftd is stopping: no new copy is started, the attempt ends.
  std::function<bool()> stopping;
  // One request to the peer ftd.
  std::function<void(const proto::PeerRequest& request, std::chrono::milliseconds timeout,
                     std::function<void(Result<proto::PeerResponse>)> done)>
      ask_peer;
};

class Reprotection : public std::enable_shared_from_this<Reprotection> {
 public:
  // Starts re-protecting `vm` (`source` says why, for logs and the peer: "automatic
  // re-protection", "ftctl enable"); `done` gets Ok once the primary is protected, or the first
  // error (naming the step).
  static std::shared_ptr<Reprotection> Start(ReprotectHost host, std::string vm, std::string source,
                                             std::function<void(Status)> done);
  ~Reprotection();

  ReprotectReport report() const;
  bool finished() const;

  struct Impl;

 private:
  explicit Reprotection(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace ft::daemon
