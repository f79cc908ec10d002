#include "replica_transfer.h"

#include <chrono>
#include <filesystem>

#include <fmt/format.h>

#include "ft/names.h"
#include "ft/daemon/vm_runner.h"
#include "ft/disk/image_use.h"
#include "ft/log.h"
#include "ft/proto/peer.pb.h"
#include "peer_link.h"
#include "vm_records.h"

namespace ft::daemon {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr size_t kChunkBytes = 1 << 20;  // well under the channel's 4 MiB frame limit
constexpr auto kAnswerTimeout = std::chrono::seconds(30);

std::string Key(const std::string& vm, const std::string& disk) { return vm + "/" + disk; }

// One disk: begin, chunks, end; then the next disk.
struct Sender : std::enable_shared_from_this<Sender> {
  std::shared_ptr<PeerConversation> conversation;
  NodeConfig node;
  replay::VmSpec spec;
  size_t index = 0;
  std::unique_ptr<disk::ImageReader> reader;
  Clock::time_point started;
  std::function<void(Status)> done;
  std::function<void(uint64_t)> progress;
  uint64_t sent_before = 0;  // bytes of the disks already sent

  std::string Name() const { return fmt::format("vm '{}': disk.{}", spec.name, spec.disks[index].id); }

  void Fail(const Status& why) {
    if (!done) return;
    auto cb = std::move(done);
    done = nullptr;
    cb(why);
  }

  // Sends `request`; `next` runs when the peer said OK.
  void Ask(const proto::PeerRequest& request, std::function<void()> next) {
    auto self = shared_from_this();
    conversation->Ask(request.SerializeAsString(), kAnswerTimeout,
                      [self, next = std::move(next)](Result<std::string> r) {
                        proto::PeerResponse response;
                        if (Status s = ParsePeerAnswer(self->node, r, response); !s.ok()) {
                          return self->Fail(s.WithContext(self->Name()));
                        }
                        if (response.code() != proto::PeerResponse::OK) {
                          return self->Fail(FailedPrecondition(
                              fmt::format("peer '{}' refused the replica: {}", response.node(),
                                          response.error())));
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
        Logger("ops")->info("{}: replica created on the peer: {:.1f} MiB in {:.2f} s ({:.0f} MiB/s), "
                            "sha256 {}",
                            self->Name(), mib, s, s > 0 ? mib / s : 0, digest.sha256.substr(0, 12));
        ++self->index;
        self->sent_before += digest.size;
        self->NextDisk();
      });
    }
    uint64_t offset = reader->offset();
    auto data = reader->Next(kChunkBytes);
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

}  // namespace

std::string ReplicaPath(const NodeConfig& node, const std::string& vm, const std::string& disk) {
  return PathsFor(node, vm).state_dir + "/replica-" + disk + ".qcow2";
}

void SendReplicas(std::shared_ptr<PeerConversation> conversation, const NodeConfig& node,
                  const replay::VmSpec& spec, std::function<void(Status)> done,
                  std::function<void(uint64_t bytes_sent)> progress) {
  auto sender = std::make_shared<Sender>();
  sender->progress = std::move(progress);
  sender->conversation = std::move(conversation);
  sender->node = node;
  sender->spec = spec;
  sender->done = std::move(done);
  sender->NextDisk();
}

Status ReplicaReceiver::Begin(const proto::ReplicaBegin& begin) {
  if (!ft::IsValidName(begin.vm()) || !ft::IsValidName(begin.disk())) {
    return InvalidArgument(fmt::format("replica for vm '{}' disk '{}': not a valid name",
                                       begin.vm(), begin.disk()));
  }
  if (Status s = CheckNotWentLive(begin.vm(), "not replaced"); !s.ok()) return s;
  std::string path = ReplicaPath(node_, begin.vm(), begin.disk());
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  // A replica left by an earlier enable is replaced: only the primary's image counts.
  auto writer = disk::ReplicaWriter::Create(path, begin.size(), /*overwrite=*/true);
  if (!writer.ok()) return writer.status();
  writing_[Key(begin.vm(), begin.disk())] = {std::move(writer).value(), Clock::now()};
  Logger("ops")->info("vm '{}': receiving the replica of disk.{} ({} bytes) into '{}'", begin.vm(),
                      begin.disk(), begin.size(), path);
  return Status::Ok();
}

Status ReplicaReceiver::Chunk(const proto::ReplicaChunk& chunk) {
  auto it = writing_.find(Key(chunk.vm(), chunk.disk()));
  if (it == writing_.end()) {
    return FailedPrecondition(fmt::format("vm '{}': no replica of disk.{} is being received",
                                          chunk.vm(), chunk.disk()));
  }
  Status s = it->second.writer->Append(chunk.offset(), chunk.data());
  it->second.last = Clock::now();
  if (!s.ok()) writing_.erase(it);  // removes the partial file
  return s;
}

Status ReplicaReceiver::End(const proto::ReplicaEnd& end) {
  auto it = writing_.find(Key(end.vm(), end.disk()));
  if (it == writing_.end()) {
    return FailedPrecondition(fmt::format("vm '{}': no replica of disk.{} is being received",
                                          end.vm(), end.disk()));
  }
  Status s = it->second.writer->Finish({end.size(), end.sha256()});
  writing_.erase(it);
  if (s.ok()) {
    Logger("ops")->info("vm '{}': replica of disk.{} verified (sha256 {}) and in place", end.vm(),
                        end.disk(), end.sha256().substr(0, 12));
  }
  return s;
}

int ReplicaReceiver::DropIdle(std::chrono::steady_clock::duration idle) {
  int dropped = 0;
  for (auto it = writing_.begin(); it != writing_.end();) {
    if (Clock::now() - it->second.last < idle) {
      ++it;
      continue;
    }
    Logger("ops")->warn("replica {}: nothing received for {} s, dropped with its partial file",
                        it->first,
                        std::chrono::duration_cast<std::chrono::seconds>(idle).count());
    it = writing_.erase(it);
    ++dropped;
  }
  return dropped;
}

Status ReplicaReceiver::CheckNotWentLive(const std::string& vm, std::string_view outcome) const {
  Result<uint64_t> went_live = ReadWentLiveRecord(node_, vm);
  if (!went_live.ok()) {
    return went_live.status().WithContext(
        fmt::format("vm '{}': its replicas are {} while the record is unreadable", vm, outcome));
  }
  if (*went_live == 0) return Status::Ok();
  return FailedPrecondition(fmt::format(
      "vm '{}' went live on this host in epoch {} from the replicas in '{}': they may be its "
      "only current disks and are {}. Run the VM here, or remove that directory by hand if "
      "its disks are not needed",
      vm, *went_live, PathsFor(node_, vm).state_dir, outcome));
}

void ReplicaReceiver::Forget(const std::string& vm) {
  for (auto it = writing_.begin(); it != writing_.end();) {
    it = it->first.rfind(vm + "/", 0) == 0 ? writing_.erase(it) : std::next(it);
  }
  if (Status s = CheckNotWentLive(vm, "kept"); !s.ok()) {
    Logger("ops")->warn("{}", s.message());
    return;
  }
  std::error_code ec;
  std::string dir = PathsFor(node_, vm).state_dir;
  if (!fs::is_directory(dir, ec)) return;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("replica-", 0) == 0) fs::remove(entry.path(), ec);
  }
}

}  // namespace ft::daemon
