// Internal to ftd: creating the backup's disk replicas when FT is turned on (ftctl enable).
// The primary's host sends each image in order (ReplicaBegin, ReplicaChunk..., ReplicaEnd
// with size and sha256) on one peer conversation; the peer writes it with
// disk::ReplicaWriter to <state_dir>/vms/VM/replica-DISK.qcow2, which lands only when the
// digest matches. The VM is not running on either host meanwhile, so the image is stable.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "ft/daemon/config.h"
#include "ft/disk/replica_copy.h"
#include "ft/status.h"

namespace asio {
class io_context;
}

namespace ft::proto {
class ReplicaBegin;
class ReplicaChunk;
class ReplicaEnd;
}  // namespace ft::proto

namespace ft::daemon {

class PeerConversation;
class BackgroundWork;

// Where this host keeps its replica of `disk` when it is the backup of a VM turned on at
// run time.
std::string ReplicaPath(const NodeConfig& node, const std::string& vm, const std::string& disk);

// Sends every disk of `spec` to the peer; `done` gets Ok or the first error (naming the VM,
// the disk and what failed). Logs each copy's size, time and rate.
// `progress`, if set, gets the bytes the peer has taken so far (of every disk) after each
// chunk.
// Chunks are read and hashed on a worker thread.
void SendReplicas(asio::io_context& io, std::shared_ptr<PeerConversation> conversation,
                  const NodeConfig& node, const domain::VmSpec& spec,
                  std::function<void(Status)> done,
                  std::function<void(uint64_t bytes_sent)> progress = {});

// The receiving side: the copies in progress, by VM and disk. Creating, writing, hashing,
// fsyncing and removing files run on worker threads (RunInBackground), one job at a time in
// the order they were asked for, so that the event loop keeps serving every other VM's
// heartbeats while a multi-GiB replica lands: chunks are written in order, a copy's End
// (sha256 check, fsync, rename) follows all its writes, and a Forget's removal follows
// everything asked before it, so that nothing it removed is put back. Each `done` runs on
// the event loop once its job ran; none runs after the receiver is destroyed.
class ReplicaReceiver {
 public:
  ReplicaReceiver(asio::io_context& io, const NodeConfig& node);
  ~ReplicaReceiver();
  // Starts receiving one disk's replica, written over an older one of the same VM and disk,
  // never over replicas a copy went live from here (the went-live record, vm_records.h).
  void Begin(const proto::ReplicaBegin& begin, std::function<void(Status)> done);
  void Chunk(const proto::ReplicaChunk& chunk, std::function<void(Status)> done);
  void End(const proto::ReplicaEnd& end, std::function<void(Status)> done);
  // FT off, or enabling failed: drops copies in progress for `vm` and removes its replicas,
  // unless a copy went live from them here (the went-live record): then they are kept, with
  // a warning. `done`, if set, runs once that is settled.
  void Forget(const std::string& vm, std::function<void()> done = {});
  // Drops copies that received nothing for `idle` (their sender's ftd died or lost the
  // peer): their partial files go. Returns how many.
  int DropIdle(std::chrono::steady_clock::duration idle);
  bool receiving() const { return !writing_.empty(); }

 private:
  // One copy's writer: only file jobs touch it, one at a time.
  struct Copy {
    std::unique_ptr<disk::ReplicaWriter> writer;
  };
  struct Writing {
    std::shared_ptr<Copy> copy;
    std::chrono::steady_clock::time_point last;
  };
  struct Job {
    std::function<Status()> work;      // on a worker thread
    std::function<void(Status)> done;  // then on the event loop
  };
  void Enqueue(std::function<Status()> work, std::function<void(Status)> done);
  void RunNext();
  // Stops a copy: its writer (and partial file) goes on the worker, after its queued jobs.
  void Drop(std::map<std::string, Writing>::iterator it);

  asio::io_context& io_;
  const NodeConfig& node_;
  std::map<std::string, Writing> writing_;  // "vm/disk"
  std::deque<Job> jobs_;
  std::unique_ptr<BackgroundWork> running_;  // the job on a worker thread, if any
};

}  // namespace ft::daemon
