#include "replica_transfer.h"

#include <chrono>
#include <filesystem>

#include <fmt/format.h>

#include "ft/daemon/vm_runner.h"
#include "ft/disk/image_use.h"
#include "ft/log.h"
#include "ft/names.h"
#include "ft/proto/peer.pb.h"
#include "peer_link.h"
#include "roles.h"
#include "vm_records.h"

namespace ft::daemon {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr size_t kChunkBytes = 1 << 20;  // well under the channel's 4 MiB frame limit
constexpr auto kAnswerTimeout = std::chrono::seconds(30);
// File jobs waiting on the receiving side; a sender waits for each answer, so a longer queue
// is a peer that does not (each queued chunk holds up to kChunkBytes).
constexpr size_t kMaxQueuedJobs = 16;

std::string Key(const std::string& vm, const std::string& disk) { return vm + "/" + disk; }

// One disk: begin, chunks, end; then the next disk.
struct Sender : std::enable_shared_from_this<Sender> {
  asio::io_context* io = nullptr;
  std::shared_ptr<PeerConversation> conversation;
  NodeConfig node;
  domain::VmSpec spec;
  size_t index = 0;
  std::unique_ptr<disk::ImageReader> reader;
  std::unique_ptr<BackgroundWork> reading;  // the next chunk, read on a worker
  Clock::time_point started;
  std::function<void(Status)> done;
  std::function<void(uint64_t)> progress;
  uint64_t sent_before = 0;  // bytes of the disks already sent

  std::string Name() const {
    return fmt::format("vm '{}': disk.{}", spec.name, spec.disks[index].id);
  }

  void Fail(const Status& why) {
    if (!done) return;
    auto cb = std::move(done);
    done = nullptr;
    cb(why);
  }

  // Sends `request`; `next` runs when the peer said OK.
  void Ask(const proto::PeerRequest& request, std::function<void()> next) {
    auto self = shared_from_this();
    conversation->Ask(
        request.SerializeAsString(), kAnswerTimeout,
        [self, next = std::move(next)](Result<std::string> r) {
          proto::PeerResponse response;
          if (Status s = ParsePeerAnswer(self->node, r, response); !s.ok()) {
            return self->Fail(s.WithContext(self->Name()));
          }
          if (response.code() != proto::PeerResponse::OK) {
            return self->Fail(FailedPrecondition(fmt::format("peer '{}' refused the replica: {}",
                                                             response.node(), response.error())));
          }
          next();
        });
  }

  void NextDisk() {
    if (index == spec.disks.size()) {
      auto cb = std::move(done);
      done = nullptr;
      return cb(Status::Ok());
    }
    const auto& d = spec.disks[index];
    if (Status s = disk::CheckImageNotInUse(spec.name, d.id, d.path); !s.ok()) return Fail(s);
    auto opened = disk::ImageReader::Open(d.path);
    if (!opened.ok()) return Fail(opened.status().WithContext(Name()));
    reader = std::move(opened).value();
    started = Clock::now();
    proto::PeerRequest begin;
    begin.mutable_replica_begin()->set_vm(spec.name);
    begin.mutable_replica_begin()->set_disk(d.id);
    begin.mutable_replica_begin()->set_size(reader->size());
    Ask(begin, [self = shared_from_this()] { self->NextChunk(); });
  }

  void NextChunk() {
    const auto& d = spec.disks[index];
    if (reader->done()) {
      disk::ImageDigest digest = reader->digest();
      proto::PeerRequest end;
      end.mutable_replica_end()->set_vm(spec.name);
      end.mutable_replica_end()->set_disk(d.id);
      end.mutable_replica_end()->set_size(digest.size);
      end.mutable_replica_end()->set_sha256(digest.sha256);
      return Ask(end, [self = shared_from_this(), digest] {
        double s = std::chrono::duration<double>(Clock::now() - self->started).count();
        double mib = double(digest.size) / (1 << 20);
        Logger("ops")->info(
            "{}: replica created on the peer: {:.1f} MiB in {:.2f} s ({:.0f} MiB/s), "
            "sha256 {}",
            self->Name(), mib, s, s > 0 ? mib / s : 0, digest.sha256.substr(0, 12));
        ++self->index;
        self->sent_before += digest.size;
        self->NextDisk();
      });
    }
    // Reading and hashing a chunk take milliseconds: on a worker, not the event loop.
    uint64_t offset = reader->offset();
    reading = RunInBackground<Result<std::string>>(
        *io, [r = reader.get()] { return r->Next(kChunkBytes); },
        [self = shared_from_this(), offset](Result<std::string> data) {
          self->reading.reset();
          self->SendChunk(offset, std::move(data));
        });
  }

  void SendChunk(uint64_t offset, Result<std::string> data) {
    const auto& d = spec.disks[index];
    if (!data.ok()) return Fail(data.status().WithContext(Name()));
    proto::PeerRequest chunk;
    chunk.mutable_replica_chunk()->set_vm(spec.name);
    chunk.mutable_replica_chunk()->set_disk(d.id);
    chunk.mutable_replica_chunk()->set_offset(offset);
    chunk.mutable_replica_chunk()->set_data(std::move(data).value());
    Ask(chunk, [self = shared_from_this()] {
      if (self->progress) self->progress(self->sent_before + self->reader->offset());
      self->NextChunk();
    });
  }
};

// OK unless a copy of `vm` went live from its replicas here (the went-live record,
// vm_records.h); otherwise says they are `outcome` ("not replaced", "kept").
Status CheckNotWentLive(const NodeConfig& node, const std::string& vm, std::string_view outcome) {
  Result<uint64_t> went_live = ReadWentLiveRecord(node, vm);
  if (!went_live.ok()) {
    return went_live.status().WithContext(
        fmt::format("vm '{}': its replicas are {} while the record is unreadable", vm, outcome));
  }
  if (*went_live == 0) return Status::Ok();
  return FailedPrecondition(fmt::format(
      "vm '{}' went live on this host in epoch {} from the replicas in '{}': they may be its "
      "only current disks and are {}. Run the VM here, or remove that directory by hand if "
      "its disks are not needed",
      vm, *went_live, PathsFor(node, vm).state_dir, outcome));
}

}  // namespace

std::string ReplicaPath(const NodeConfig& node, const std::string& vm, const std::string& disk) {
  return PathsFor(node, vm).state_dir + "/replica-" + disk + ".qcow2";
}

void SendReplicas(asio::io_context& io, std::shared_ptr<PeerConversation> conversation,
                  const NodeConfig& node, const domain::VmSpec& spec,
                  std::function<void(Status)> done,
                  std::function<void(uint64_t bytes_sent)> progress) {
  auto sender = std::make_shared<Sender>();
  sender->io = &io;
  sender->progress = std::move(progress);
  sender->conversation = std::move(conversation);
  sender->node = node;
  sender->spec = spec;
  sender->done = std::move(done);
  sender->NextDisk();
}

ReplicaReceiver::ReplicaReceiver(asio::io_context& io, const NodeConfig& node)
    : io_(io), node_(node) {}

ReplicaReceiver::~ReplicaReceiver() = default;

void ReplicaReceiver::Enqueue(std::function<Status()> work, std::function<void(Status)> done) {
  jobs_.push_back({std::move(work), std::move(done)});
  RunNext();
}

void ReplicaReceiver::RunNext() {
  if (running_ || jobs_.empty()) return;
  Job job = std::move(jobs_.front());
  jobs_.pop_front();
  // Dropped with this receiver: `this` is alive whenever the closure runs.
  running_ = RunInBackground<Status>(io_, std::move(job.work),
                                     [this, done = std::move(job.done)](Status s) {
                                       running_.reset();
                                       if (done) done(s);
                                       RunNext();
                                     });
}

void ReplicaReceiver::Drop(std::map<std::string, Writing>::iterator it) {
  Enqueue(
      [copy = it->second.copy] {
        copy->writer.reset();  // removes the partial file
        return Status::Ok();
      },
      nullptr);
  writing_.erase(it);
}

void ReplicaReceiver::Begin(const proto::ReplicaBegin& begin, std::function<void(Status)> done) {
  // Checked by the request's field rules already; paths are built from names only here.
  if (!ft::IsValidName(begin.vm()) || !ft::IsValidName(begin.disk())) {
    return done(InvalidArgument(fmt::format("replica for vm '{}' disk '{}': not a valid name",
                                            ft::PrintableText(begin.vm(), ft::kMaxNameBytes),
                                            ft::PrintableText(begin.disk(), ft::kMaxNameBytes))));
  }
  std::string key = Key(begin.vm(), begin.disk());
  if (auto it = writing_.find(key); it != writing_.end()) Drop(it);
  std::string path = ReplicaPath(node_, begin.vm(), begin.disk());
  auto copy = std::make_shared<Copy>();
  writing_[key] = {copy, Clock::now()};
  Logger("ops")->info("vm '{}': receiving the replica of disk.{} ({} bytes) into '{}'", begin.vm(),
                      begin.disk(), begin.size(), path);
  Enqueue(
      [copy, path, size = begin.size(), &node = node_, vm = begin.vm()]() -> Status {
        FT_RETURN_IF_ERROR(CheckNotWentLive(node, vm, "not replaced"));
        std::error_code ec;
        fs::create_directories(fs::path(path).parent_path(), ec);
        // A replica left by an earlier enable is replaced: only the primary's image counts.
        FT_ASSIGN_OR_RETURN(copy->writer,
                            disk::ReplicaWriter::Create(path, size, /*overwrite=*/true));
        return Status::Ok();
      },
      [this, key, copy, done = std::move(done)](Status s) {
        auto it = writing_.find(key);
        if (!s.ok() && it != writing_.end() && it->second.copy == copy) writing_.erase(it);
        done(s);
      });
}

void ReplicaReceiver::Chunk(const proto::ReplicaChunk& chunk, std::function<void(Status)> done) {
  std::string key = Key(chunk.vm(), chunk.disk());
  auto it = writing_.find(key);
  if (it == writing_.end()) {
    return done(FailedPrecondition(
        fmt::format("vm '{}': no replica of disk.{} is being received", chunk.vm(), chunk.disk())));
  }
  if (jobs_.size() >= kMaxQueuedJobs) {
    return done(
        Unavailable(fmt::format("vm '{}': disk.{}: {} replica writes are queued already; "
                                "wait for the answers",
                                chunk.vm(), chunk.disk(), jobs_.size())));
  }
  it->second.last = Clock::now();
  auto copy = it->second.copy;
  Enqueue(
      [copy, offset = chunk.offset(), data = chunk.data()]() -> Status {
        if (!copy->writer) return Aborted("the replica's file could not be created");
        Status s = copy->writer->Append(offset, data);
        if (!s.ok()) copy->writer.reset();  // removes the partial file
        return s;
      },
      [this, key, copy, done = std::move(done)](Status s) {
        auto found = writing_.find(key);
        if (!s.ok() && found != writing_.end() && found->second.copy == copy) writing_.erase(found);
        done(s);
      });
}

void ReplicaReceiver::End(const proto::ReplicaEnd& end, std::function<void(Status)> done) {
  auto it = writing_.find(Key(end.vm(), end.disk()));
  if (it == writing_.end()) {
    return done(FailedPrecondition(
        fmt::format("vm '{}': no replica of disk.{} is being received", end.vm(), end.disk())));
  }
  auto copy = it->second.copy;
  writing_.erase(it);
  Enqueue(
      [copy, expected = disk::ImageDigest{end.size(), end.sha256()}]() -> Status {
        if (!copy->writer) return Aborted("the replica's file could not be created");
        Status s = copy->writer->Finish(expected);
        copy->writer.reset();  // closes it; removes the partial file if Finish failed
        return s;
      },
      [vm = end.vm(), disk = end.disk(), sha = end.sha256(), done = std::move(done)](Status s) {
        if (s.ok()) {
          Logger("ops")->info("vm '{}': replica of disk.{} verified (sha256 {}) and in place", vm,
                              disk, sha.substr(0, 12));
        }
        done(s);
      });
}

int ReplicaReceiver::DropIdle(std::chrono::steady_clock::duration idle) {
  int dropped = 0;
  for (auto it = writing_.begin(); it != writing_.end();) {
    auto next = std::next(it);
    if (Clock::now() - it->second.last >= idle) {
      Logger("ops")->warn("replica {}: nothing received for {} s, dropped with its partial file",
                          it->first,
                          std::chrono::duration_cast<std::chrono::seconds>(idle).count());
      Drop(it);
      ++dropped;
    }
    it = next;
  }
  return dropped;
}

void ReplicaReceiver::Forget(const std::string& vm, std::function<void()> done) {
  for (auto it = writing_.begin(); it != writing_.end();) {
    auto next = std::next(it);
    if (it->first.rfind(vm + "/", 0) == 0) Drop(it);
    it = next;
  }
  // After every job asked before it: a copy that was landing is removed, not left behind.
  Enqueue(
      [dir = PathsFor(node_, vm).state_dir, &node = node_, vm]() -> Status {
        if (Status s = CheckNotWentLive(node, vm, "kept"); !s.ok()) {
          Logger("ops")->warn("{}", s.message());
          return Status::Ok();
        }
        std::error_code ec;
        if (!fs::is_directory(dir, ec)) return Status::Ok();
        for (const auto& entry : fs::directory_iterator(dir, ec)) {
          std::string name = entry.path().filename().string();
          if (name.rfind("replica-", 0) == 0) fs::remove(entry.path(), ec);
        }
        return Status::Ok();
      },
      [done = std::move(done)](Status) {
        if (done) done();
      });
}

}  // namespace ft::daemon
