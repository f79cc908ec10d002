// Internal to ftd: creating the backup's disk replicas when FT is turned on (ftctl enable).
// The primary's host sends each image in order (ReplicaBegin, ReplicaChunk..., ReplicaEnd
// with size and sha256) on one peer conversation; the peer writes it with
// disk::ReplicaWriter to <state_dir>/vms/VM/replica-DISK.qcow2, which lands only when the
// digest matches. The VM is not running on either host meanwhile, so the image is stable.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "ft/daemon/config.h"
#include "ft/disk/replica_copy.h"
#include "ft/status.h"

namespace ft::proto {
class ReplicaBegin;
class ReplicaChunk;
class ReplicaEnd;
}  // namespace ft::proto

namespace ft::daemon {

class PeerConversation;

// Where this host keeps its replica of `disk` when it is the backup of a VM turned on at
// run time.
std::string ReplicaPath(const NodeConfig& node, const std::string& vm, const std::string& disk);

// Sends every disk of `spec` to the peer; `done` gets Ok or the first error (naming the VM,
// the disk and what failed). Logs each copy's size, time and rate.
// `progress`, if set, gets the bytes the peer has taken so far (of every disk) after each
// chunk.
void SendReplicas(std::shared_ptr<PeerConversation> conversation, const NodeConfig& node,
                  const replay::VmSpec& spec, std::function<void(Status)> done,
                  std::function<void(uint64_t bytes_sent)> progress = {});

// The receiving side: the copies in progress, by VM and disk.
class ReplicaReceiver {
 public:
  explicit ReplicaReceiver(const NodeConfig& node) : node_(node) {}
  // Starts receiving one disk's replica, written over an older one of the same VM and disk,
  // never over replicas a copy went live from here (the went-live record, vm_records.h).
  Status Begin(const proto::ReplicaBegin& begin);
  Status Chunk(const proto::ReplicaChunk& chunk);
  Status End(const proto::ReplicaEnd& end);
  // FT off, or enabling failed: drops the VM's transfers in progress and removes its replicas, unless a copy went live
  // from them here (the went-live record, vm_records.h): then they are kept, with a warning.
  void Forget(const std::string& vm);
  // Drops copies that received nothing for `idle` (their sender's ftd died or lost the
  // peer): their partial files go. Returns how many.
  int DropIdle(std::chrono::steady_clock::duration idle);
  bool receiving() const { return !writing_.empty(); }

 private:
  // OK unless the VM went live from its replicas here; otherwise says they are `outcome`.
  Status CheckNotWentLive(const std::string& vm, std::string_view outcome) const;

  struct Writing {
    std::unique_ptr<disk::ReplicaWriter> writer;
    std::chrono::steady_clock::time_point last;
  };
  const NodeConfig& node_;
  std::map<std::string, Writing> writing_;  // "vm/disk"
};

}  // namespace ft::daemon
