// The first TestAndSet backend: one file per (vm, epoch) in a directory both hosts mount
// (NFS or any POSIX filesystem with atomic link(2)). Layout and the atomicity argument:
// docs/formats/claim-record.md.
//
//   <root>/ftd-claim-store                    marker with the store's id, by Initialize()
//   <root>/<vm>/epoch-<20 digits>.claim       one record per claimed epoch
//   <root>/<vm>/.tmp-<20 digits>-<random>     a claim being written (never a record)
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>

#include "ft/shared_disk/test_and_set.h"
#include "ft/status.h"

namespace ft::shared_disk {

// The marker that tells a claim store from an empty mount point: without it every operation
// is Unavailable ("is the shared storage mounted?"). Otherwise two hosts whose share failed
// to mount would each claim on their own local disk and both win.
inline constexpr const char* kStoreMarkerName = "ftd-claim-store";

struct InitOptions {
  // Refuse (FailedPrecondition) unless `root` is a mount point (IsMountPoint): what the
  // operator expects when the store is a mounted share, so that the empty mount point of a
  // share that failed to mount is never made a store of its own.
  bool expect_mount = false;
};

struct SharedDirectoryOptions {
  // Test seams for faults that cannot be provoked reliably from a unit test: how the record
  // bytes reach the temp file and how files and directories are synced. Same contract as
  // ::write(2) / ::fsync(2) (return -1 and set errno). Null means the real call.
  std::function<ssize_t(int fd, const void* data, size_t size)> write;
  std::function<int(int fd)> fsync;
  // Prune removes temp files (left by a node that crashed mid-claim) older than this.
  int64_t stale_temp_age_ms = 10 * 60 * 1000;
};

class SharedDirectoryTestAndSet final : public TestAndSet {
 public:
  // `root` must exist and hold the store marker (Initialize). Nothing is touched here.
  explicit SharedDirectoryTestAndSet(std::string root, SharedDirectoryOptions options = {});

  // Makes `root` (which must exist: else Unavailable) a claim store and returns its id (32
  // lowercase hex digits, random). Idempotent: a store that has an id keeps it; a store made
  // by an older ftd (marker version 1, no id) gets one. Writes the marker under a temp name,
  // syncs it, then links (new) or renames (upgrade) it into place and syncs `root`. A corrupt
  // marker is DataLoss naming it and is left as it is. An operator step, done once on the
  // mounted share (`ftctl init-storage`), never automatically at startup.
  static Result<std::string> Initialize(const std::string& root, InitOptions options = {});

  // Thread-safe: no state besides the options. Every error names the path it concerns;
  // storage errors (ENOENT root, EACCES, ENOSPC, EIO, EROFS, ENOTDIR...) are Unavailable and
  // leave no temp file behind.
  Result<ClaimOutcome> Claim(const ClaimRequest& request) override;
  Result<ClaimRecord> Read(const std::string& vm, uint64_t epoch) override;
  Result<uint64_t> LatestEpoch(const std::string& vm) override;
  Status Prune(const std::string& vm, uint64_t keep_from) override;
  // The id in the marker. No marker: Unavailable ("is the shared storage mounted?"); a
  // version-1 marker: FailedPrecondition (run 'ftctl init-storage DIR' again); corrupt:
  // DataLoss naming the file.
  Result<std::string> StoreId() override;

  const std::string& root() const { return root_; }

 private:
  Status CheckStore() const;
  Result<std::string> UpgradeMarker();
  std::string VmDir(const std::string& vm) const;
  Result<ClaimRecord> ReadPath(const std::string& path, const std::string& vm, uint64_t epoch);
  Result<ClaimOutcome> ClaimIn(const ClaimRequest& request, const std::string& dir,
                               const std::string& final_path);
  Result<ClaimOutcome> Decided(const ClaimRequest& request, const std::string& dir,
                               const std::string& final_path, ClaimRecord existing);
  Result<ClaimOutcome> FinishWin(const std::string& vm, uint64_t epoch, ClaimRecord record);
  Status SyncNames(const std::string& vm_dir);
  Status SyncDir(const std::string& dir);
  int Fsync(int fd);

  std::string root_;
  SharedDirectoryOptions options_;
};

}  // namespace ft::shared_disk
