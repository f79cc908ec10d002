#include "ft/shared_disk/shared_directory.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/logger.h>

#include "ft/log.h"
#include "ft/names.h"
#include "ft/shared_disk/claim_record.h"
#include "ft/shared_disk/mount_point.h"
#include "ft/shared_disk/store_marker.h"
#include "ft/unique_fd.h"

namespace ft::shared_disk {
namespace {

constexpr std::string_view kTempPrefix = ".tmp-";

Status StorageError(std::string_view what, const std::string& path, int err) {
  return Unavailable(fmt::format("{} '{}': {}", what, path, std::strerror(err)));
}

std::string RandomHex() {
  uint64_t v = 0;
  if (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) {
    // getrandom cannot really fail here; O_EXCL still protects against a collision.
    static std::atomic<uint64_t> counter{0};
    v = static_cast<uint64_t>(::getpid()) << 32 ^ counter.fetch_add(1) ^
        static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  return fmt::format("{:016x}", v);
}

// Two stores must never have the same id, so there is no fallback to weaker randomness.
Result<std::string> NewStoreId() {
  unsigned char bytes[kStoreIdHexChars / 2];
  size_t done = 0;
  while (done < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + done, sizeof bytes - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return Internal(fmt::format("cannot draw a random claim store id: getrandom: {}",
                                  std::strerror(n < 0 ? errno : EIO)));
    }
    done += static_cast<size_t>(n);
  }
  std::string id;
  for (unsigned char b : bytes) id += fmt::format("{:02x}", b);
  return id;
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A fully written and synced file under a unique name, removed again on destruction: the
// caller links it to its final name first if it wants to keep its contents.
class TempFile {
 public:
  static Result<TempFile> Create(const std::string& dir, std::string_view tag,
                                 std::string_view bytes, const SharedDirectoryOptions& options) {
    TempFile t;
    for (int attempt = 0;; ++attempt) {
      t.path_ = fmt::format("{}/{}{}-{}", dir, kTempPrefix, tag, RandomHex());
      t.fd_ = UniqueFd(::open(t.path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
      if (t.fd_.get() >= 0) break;
      int err = errno;
      if (err != EEXIST || attempt == 3) {
        t.path_.clear();  // nothing was created
        return StorageError("cannot create temp file",
                            fmt::format("{}/{}{}-...", dir, kTempPrefix, tag), err);
      }
    }
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = options.write
                      ? options.write(t.fd_.get(), bytes.data() + done, bytes.size() - done)
                      : ::write(t.fd_.get(), bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return StorageError("cannot write", t.path_, n < 0 ? errno : EIO);
      done += static_cast<size_t>(n);
    }
    int rc = options.fsync ? options.fsync(t.fd_.get()) : ::fsync(t.fd_.get());
    if (rc != 0) return StorageError("cannot sync", t.path_, errno);
    return t;
  }

  TempFile() = default;
  TempFile(TempFile&& o) noexcept : fd_(std::move(o.fd_)), path_(std::exchange(o.path_, {})) {}
  TempFile& operator=(TempFile&&) = delete;
  ~TempFile() { Remove(); }

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }

  // Link count 2: the link to the final name exists even if link() reported an error (on NFS a
  // retransmitted LINK whose first reply was lost answers EEXIST; see open(2), O_EXCL).
  bool IsLinked() const {
    struct stat st {};
    return ::fstat(fd_.get(), &st) == 0 && st.st_nlink == 2;
  }

  // Renamed to its final name: nothing left to remove.
  void Renamed() {
    fd_.Reset();
    path_.clear();
  }

  void Remove() {
    fd_.Reset();
    if (path_.empty()) return;
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
      Logger("arbiter")->warn("cannot remove temp file '{}': {} (Prune removes it later)", path_,
                              std::strerror(errno));
    }
    path_.clear();
  }

 private:
  UniqueFd fd_;
  std::string path_;
};

struct DirListing {
  std::vector<uint64_t> epochs;
  std::vector<std::string> temps;
  uint64_t latest() const {
    return epochs.empty() ? 0 : *std::max_element(epochs.begin(), epochs.end());
  }
};

// A missing directory is an empty listing: the vm has no claims yet.
Result<DirListing> ListDir(const std::string& dir) {
  DirListing listing;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return listing;
    return StorageError("cannot read directory", dir, errno);
  }
  for (;;) {
    errno = 0;
    struct dirent* e = ::readdir(d);
    if (e == nullptr) break;
    std::string_view name = e->d_name;
    if (uint64_t epoch = EpochOfClaimFileName(name); epoch != 0) {
      listing.epochs.push_back(epoch);
    } else if (name.substr(0, kTempPrefix.size()) == kTempPrefix) {
      listing.temps.emplace_back(name);
    }
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return StorageError("cannot read directory", dir, err);
  return listing;
}

std::string MarkerPath(const std::string& root) {
  return fmt::format("{}/{}", root, kStoreMarkerName);
}

// NotFound if there is no marker.
Result<StoreMarker> ReadMarker(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return NotFound(fmt::format("no claim store marker '{}'", path));
    return StorageError("cannot open claim store marker", path, errno);
  }
  std::string bytes(kMaxStoreMarkerBytes + 1, '\0');
  size_t size = 0;
  while (size < bytes.size()) {
    ssize_t n = ::read(fd.get(), bytes.data() + size, bytes.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return StorageError("cannot read claim store marker", path, errno);
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  bytes.resize(size);
  Result<StoreMarker> marker = DecodeStoreMarker(bytes);
  if (!marker.ok()) {
    return marker.status().WithContext(fmt::format("claim store marker '{}'", path));
  }
  return marker;
}

}  // namespace

SharedDirectoryTestAndSet::SharedDirectoryTestAndSet(std::string root,
                                                     SharedDirectoryOptions options)
    : root_(std::move(root)), options_(std::move(options)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

Result<std::string> SharedDirectoryTestAndSet::Initialize(const std::string& root,
                                                          InitOptions options) {
  SharedDirectoryTestAndSet store(root);
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0) return StorageError("claim store", root, errno);
  if (!S_ISDIR(st.st_mode))
    return Unavailable(fmt::format("claim store '{}' is not a directory", root));
  if (options.expect_mount) {
    FT_ASSIGN_OR_RETURN(bool mounted, IsMountPoint(root));
    if (!mounted) {
      return FailedPrecondition(fmt::format(
          "'{}' is not a mount point: is the shared storage mounted? (--expect-mount)", root));
    }
  }
  const std::string marker = MarkerPath(store.root_);
  // Twice at most: a second init-storage may link its marker between our read and our link.
  for (int attempt = 0; attempt < 2; ++attempt) {
    Result<StoreMarker> existing = ReadMarker(marker);
    if (existing.ok()) {
      if (existing->format_version >= kStoreMarkerVersion) return existing->id;
      return store.UpgradeMarker();
    }
    if (existing.status().code() != StatusCode::kNotFound) {
      if (existing.status().code() != StatusCode::kDataLoss) return existing.status();
      return DataLoss(fmt::format(
          "{}; init-storage leaves it as it is: remove it by hand to make '{}' a new store "
          "(only while no ftd uses it)",
          existing.status().message(), store.root_));
    }
    FT_ASSIGN_OR_RETURN(std::string id, NewStoreId());
    FT_ASSIGN_OR_RETURN(TempFile temp, TempFile::Create(store.root_, "store", EncodeStoreMarker(id),
                                                        store.options_));
    // link(2), not rename(2): a marker someone else just made is never replaced.
    bool linked = ::link(temp.path().c_str(), marker.c_str()) == 0;
    int err = linked ? 0 : errno;
    if (!linked) linked = temp.IsLinked();
    temp.Remove();
    if (linked) {
      FT_RETURN_IF_ERROR(store.SyncDir(store.root_));
      return id;
    }
    if (err != EEXIST) return StorageError("cannot create", marker, err);
  }
  return Unavailable(fmt::format("'{}' appeared and vanished again; try again", marker));
}

// A version-1 marker (no id) replaced by a version-2 one: rename(2) swaps the whole file, so
// a reader sees the old marker or the new one, and the store is a store throughout.
Result<std::string> SharedDirectoryTestAndSet::UpgradeMarker() {
  const std::string marker = MarkerPath(root_);
  FT_ASSIGN_OR_RETURN(std::string id, NewStoreId());
  FT_ASSIGN_OR_RETURN(TempFile temp,
                      TempFile::Create(root_, "store", EncodeStoreMarker(id), options_));
  if (::rename(temp.path().c_str(), marker.c_str()) != 0) {
    return StorageError("cannot replace", marker, errno);
  }
  temp.Renamed();
  FT_RETURN_IF_ERROR(SyncDir(root_));
  // Two upgrades at once: the last rename is the store's id, so answer with what is there.
  FT_ASSIGN_OR_RETURN(StoreMarker now, ReadMarker(marker));
  if (now.format_version < kStoreMarkerVersion) {
    return Unavailable(
        fmt::format("'{}' was replaced by an older marker meanwhile; try again", marker));
  }
  return now.id;
}

Status SharedDirectoryTestAndSet::CheckStore() const {
  struct stat st {};
  if (::stat(root_.c_str(), &st) != 0) return StorageError("claim store", root_, errno);
  if (!S_ISDIR(st.st_mode)) {
    return Unavailable(fmt::format("claim store '{}' is not a directory", root_));
  }
  std::string marker = MarkerPath(root_);
  if (::stat(marker.c_str(), &st) != 0) {
    if (errno != ENOENT) return StorageError("claim store", marker, errno);
    return Unavailable(fmt::format(
        "'{}' is not a claim store (no '{}' in it): is the shared storage mounted? A new "
        "store is initialized once on the mounted share (docs/formats/claim-record.md)",
        root_, kStoreMarkerName));
  }
  return Status::Ok();
}

Result<std::string> SharedDirectoryTestAndSet::StoreId() {
  FT_RETURN_IF_ERROR(CheckStore());
  FT_ASSIGN_OR_RETURN(StoreMarker marker, ReadMarker(MarkerPath(root_)));
  if (marker.format_version < kStoreMarkerVersion) {
    return FailedPrecondition(
        fmt::format("claim store '{}' has no identity (made by an older ftd): run 'ftctl "
                    "init-storage {}' again",
                    root_, root_));
  }
  return marker.id;
}

std::string SharedDirectoryTestAndSet::VmDir(const std::string& vm) const {
  return fmt::format("{}/{}", root_, vm);
}

int SharedDirectoryTestAndSet::Fsync(int fd) {
  return options_.fsync ? options_.fsync(fd) : ::fsync(fd);
}

Status SharedDirectoryTestAndSet::SyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return StorageError("cannot open directory", dir, errno);
  if (Fsync(fd.get()) != 0) return StorageError("cannot sync directory", dir, errno);
  return Status::Ok();
}

// The record's name in the vm directory and the vm directory's name in the root (it may have
// been created by this claim, or by one whose sync failed).
Status SharedDirectoryTestAndSet::SyncNames(const std::string& vm_dir) {
  FT_RETURN_IF_ERROR(SyncDir(vm_dir));
  return SyncDir(root_);
}

Result<ClaimRecord> SharedDirectoryTestAndSet::ReadPath(const std::string& path,
                                                        const std::string& vm, uint64_t epoch) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return NotFound(fmt::format("no claim record '{}'", path));
    return StorageError("cannot open claim record", path, errno);
  }
  std::string bytes(kMaxClaimRecordBytes + 1, '\0');
  size_t size = 0;
  while (size < bytes.size()) {
    ssize_t n = ::read(fd.get(), bytes.data() + size, bytes.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return StorageError("cannot read claim record", path, errno);
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  bytes.resize(size);
  Result<ClaimRecord> record = DecodeClaimRecord(bytes);
  if (!record.ok()) return record.status().WithContext(fmt::format("claim record '{}'", path));
  if (record->vm != vm || record->epoch != epoch) {
    return DataLoss(fmt::format("claim record '{}' is for vm '{}' epoch {}, not vm '{}' epoch {}",
                                path, record->vm, record->epoch, vm, epoch));
  }
  return record;
}

Result<ClaimOutcome> SharedDirectoryTestAndSet::FinishWin(const std::string& vm, uint64_t epoch,
                                                          ClaimRecord record) {
  // Won (vm, epoch), but a later epoch supersedes it: a stale node must not go live.
  FT_ASSIGN_OR_RETURN(DirListing listing, ListDir(VmDir(vm)));
  uint64_t latest = listing.latest();
  if (latest > epoch) {
    FT_ASSIGN_OR_RETURN(
        ClaimRecord later,
        ReadPath(fmt::format("{}/{}", VmDir(vm), ClaimFileName(latest)), vm, latest));
    return ClaimOutcome{Outcome::kLost, std::move(later)};
  }
  return ClaimOutcome{Outcome::kWon, std::move(record)};
}

Result<ClaimOutcome> SharedDirectoryTestAndSet::Claim(const ClaimRequest& request) {
  if (!ft::IsValidName(request.vm)) {
    return InvalidArgument(fmt::format("invalid vm name '{}'", request.vm));
  }
  if (request.epoch == 0) return InvalidArgument("epoch 0 cannot be claimed (epochs start at 1)");
  if (!IsValidNodeName(request.node)) {
    return InvalidArgument(fmt::format("invalid node name '{}'", request.node));
  }
  const std::string context = fmt::format("vm '{}' epoch {}: claim by '{}' not decided", request.vm,
                                          request.epoch, request.node);
  if (Status s = CheckStore(); !s.ok()) return s.WithContext(context);

  const std::string dir = VmDir(request.vm);
  const std::string final_path = fmt::format("{}/{}", dir, ClaimFileName(request.epoch));
  Result<ClaimOutcome> outcome = ClaimIn(request, dir, final_path);
  if (!outcome.ok()) return outcome.status().WithContext(context);
  return outcome;
}

Result<ClaimOutcome> SharedDirectoryTestAndSet::ClaimIn(const ClaimRequest& request,
                                                        const std::string& dir,
                                                        const std::string& final_path) {
  // Already decided: answer from the record without writing, so a node that lost learns it
  // even while the storage is full or read-only.
  Result<ClaimRecord> existing = ReadPath(final_path, request.vm, request.epoch);
  if (existing.ok()) return Decided(request, dir, final_path, std::move(existing).value());
  if (existing.status().code() != StatusCode::kNotFound) return existing.status();
  // A stale epoch (older than the latest record, maybe pruned) loses without writing.
  FT_ASSIGN_OR_RETURN(ClaimOutcome stale, FinishWin(request.vm, request.epoch, ClaimRecord{}));
  if (!stale.won()) return stale;

  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return StorageError("cannot create directory", dir, errno);
  }
  ClaimRecord mine{
      kClaimRecordVersion, request.vm, request.epoch, request.node, SanitizeReason(request.reason),
      NowUnixMs()};
  FT_ASSIGN_OR_RETURN(TempFile temp, TempFile::Create(dir, fmt::format("{:020d}", request.epoch),
                                                      EncodeClaimRecord(mine), options_));

  // The atomic step: link(2) creates the final name only if it does not exist yet, and the
  // name appears with the complete, synced contents.
  bool linked = ::link(temp.path().c_str(), final_path.c_str()) == 0;
  int link_err = linked ? 0 : errno;
  if (!linked) linked = temp.IsLinked();
  const std::string temp_path = temp.path();
  temp.Remove();

  if (linked) {
    FT_RETURN_IF_ERROR(SyncNames(dir));  // the name is durable before anyone acts on the win
    return FinishWin(request.vm, request.epoch, std::move(mine));
  }
  if (link_err != EEXIST) {
    return Unavailable(fmt::format("cannot link '{}' to '{}': {}", temp_path, final_path,
                                   std::strerror(link_err)));
  }
  // Someone else got there first (or this node on an earlier try).
  existing = ReadPath(final_path, request.vm, request.epoch);
  if (existing.ok()) return Decided(request, dir, final_path, std::move(existing).value());
  if (existing.status().code() == StatusCode::kNotFound) {
    // Pruned since link() saw it, which happens only once a later epoch exists.
    Result<ClaimOutcome> later = FinishWin(request.vm, request.epoch, ClaimRecord{});
    if (later.ok() && !later->won()) return later;
    return Unavailable(fmt::format("'{}' existed and then vanished; try again", final_path));
  }
  return existing.status();
}

Result<ClaimOutcome> SharedDirectoryTestAndSet::Decided(const ClaimRequest& request,
                                                        const std::string& dir,
                                                        const std::string& final_path,
                                                        ClaimRecord existing) {
  if (existing.winner != request.node) return ClaimOutcome{Outcome::kLost, std::move(existing)};
  // Our own record: an earlier try may have died before its syncs.
  UniqueFd fd(::open(final_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return StorageError("cannot open", final_path, errno);
  if (Fsync(fd.get()) != 0) return StorageError("cannot sync", final_path, errno);
  FT_RETURN_IF_ERROR(SyncNames(dir));
  return FinishWin(request.vm, request.epoch, std::move(existing));
}

Result<ClaimRecord> SharedDirectoryTestAndSet::Read(const std::string& vm, uint64_t epoch) {
  if (!ft::IsValidName(vm)) return InvalidArgument(fmt::format("invalid vm name '{}'", vm));
  FT_RETURN_IF_ERROR(CheckStore());
  return ReadPath(fmt::format("{}/{}", VmDir(vm), ClaimFileName(epoch)), vm, epoch);
}

Result<uint64_t> SharedDirectoryTestAndSet::LatestEpoch(const std::string& vm) {
  if (!ft::IsValidName(vm)) return InvalidArgument(fmt::format("invalid vm name '{}'", vm));
  FT_RETURN_IF_ERROR(CheckStore());
  FT_ASSIGN_OR_RETURN(DirListing listing, ListDir(VmDir(vm)));
  return listing.latest();
}

Status SharedDirectoryTestAndSet::Prune(const std::string& vm, uint64_t keep_from) {
  if (!ft::IsValidName(vm)) return InvalidArgument(fmt::format("invalid vm name '{}'", vm));
  FT_RETURN_IF_ERROR(CheckStore());
  const std::string dir = VmDir(vm);
  FT_ASSIGN_OR_RETURN(DirListing listing, ListDir(dir));
  const uint64_t limit = std::min(keep_from, listing.latest());  // the latest always stays
  bool removed = false;
  auto remove = [&](const std::string& path) -> Status {
    if (::unlink(path.c_str()) == 0) {
      removed = true;
    } else if (errno != ENOENT) {  // ENOENT: another node pruned it first
      return StorageError("cannot remove", path, errno);
    }
    return Status::Ok();
  };
  for (uint64_t epoch : listing.epochs) {
    if (epoch < limit) FT_RETURN_IF_ERROR(remove(fmt::format("{}/{}", dir, ClaimFileName(epoch))));
  }
  // Temp files of claims that died half way. A live claim's temp exists for milliseconds.
  const int64_t now_ms = NowUnixMs();
  for (const std::string& name : listing.temps) {
    std::string path = fmt::format("{}/{}", dir, name);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;
    int64_t mtime_ms =
        static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
    if (now_ms - mtime_ms > options_.stale_temp_age_ms) FT_RETURN_IF_ERROR(remove(path));
  }
  if (removed) FT_RETURN_IF_ERROR(SyncDir(dir));
  return Status::Ok();
}

}  // namespace ft::shared_disk
