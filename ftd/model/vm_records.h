// Internal to ftd: the records ftd keeps per VM in <state_dir>/vms/NAME/ (the epoch record
// here; enabled.conf in enabled_vms.h), and the durable write and sealed-text framing they
// share. Formats: docs/formats/state-files.md.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "ft/daemon/config.h"
#include "ft/status.h"

namespace ft::daemon {

// ---- Durable files ----

struct DurableWriteHooks {
  // Test seams for faults a unit test cannot provoke on a real filesystem (ENOSPC, EIO).
  // Same contract as ::write(2) / ::fsync(2): return -1 and set errno. Null: the real call.
  std::function<ssize_t(int fd, const void* data, size_t size)> write;
  std::function<int(int fd)> fsync;
};

// Replaces `path` with `bytes` so that after a crash or power cut it holds the old bytes or
// the new ones, never a mix: creates missing parent directories (syncing each new one's
// parent), writes `path`.tmp, fsyncs it, renames it over `path`, fsyncs the directory.
// Errors name the path, the step and the errno text. A failure before the rename leaves the
// old file untouched and no temp file behind; a failure to sync the directory after the
// rename is an error too, though the new bytes are in place (they may not survive a power
// cut).
Status WriteFileDurably(const std::string& path, std::string_view bytes, mode_t mode,
                        const DurableWriteHooks& hooks = {});

// Removes `path` (absent already is fine) and fsyncs its directory, so that a removed record
// does not come back after a power cut.
Status RemoveFileDurably(const std::string& path);

// The whole of a small file, or nullopt if it does not exist. A file larger than
// `max_bytes` is DataLoss (no record is that big); other errors name the path and errno.
Result<std::optional<std::string>> ReadSmallFile(const std::string& path, size_t max_bytes);

// ---- Sealed text: a record that ends with a CRC line ----

// `content` (empty or ending in '\n') followed by "<line_prefix>crc32 <8 lowercase hex>\n",
// the CRC-32 (ft::Crc32) of `content`.
std::string AppendCrcLine(std::string content, std::string_view line_prefix);

// Checks the CRC line that ends `bytes` and returns the content before it. No complete CRC
// line at the end -> DataLoss "truncated ..."; a CRC that does not match -> DataLoss "CRC
// mismatch ...". Messages do not name the file: the caller adds it.
Result<std::string_view> CheckCrcLine(std::string_view bytes, std::string_view line_prefix);

// ---- The epoch record: <state_dir>/vms/NAME/epoch ----

inline constexpr uint32_t kEpochRecordVersion = 1;
// No valid record is larger (a 64-byte vm name and a 20-digit epoch fit with room to spare).
inline constexpr size_t kMaxEpochRecordBytes = 256;

// "ftd-epoch 1\nvm web1\nepoch 2\ncrc32 <8 hex>\n". `vm` must be a valid VM name and
// `epoch` >= 1: callers check first.
std::string EncodeEpochRecord(std::string_view vm, uint64_t epoch);

// The epoch a record holds, checked against the VM it must belong to. Truncated, CRC
// mismatch, malformed or another VM's record -> DataLoss naming what is wrong; a newer
// format version with a good CRC -> FailedPrecondition. A legacy record (older ftd: a
// positive decimal number, optionally followed by one '\n') is accepted as that epoch.
// Messages do not name the file: the caller adds it.
Result<uint64_t> DecodeEpochRecord(std::string_view bytes, std::string_view vm);

std::string EpochRecordPath(const NodeConfig& node, const std::string& vm);

// The VM's current epoch on this host; 0 if it has no epoch record (never protected here).
// A record that exists but cannot be read or is damaged is an error naming the file: the
// VM's epoch is unknown then, and guessing could put it back in an older one.
Result<uint64_t> ReadEpochRecord(const NodeConfig& node, const std::string& vm);

// Records `epoch` (>= 1) as the VM's current one with WriteFileDurably (a legacy record is
// replaced by the current format).
Status WriteEpochRecord(const NodeConfig& node, const std::string& vm, uint64_t epoch);

// ---- The went-live record: <state_dir>/vms/NAME/went-live ----
// Written (durably, in the epoch record's format) when a backup's copy wins the claim and goes
// live on this host, before it runs: from then on the replicas in NAME's directory are the
// VM's disks, possibly the only current ones anywhere. While the record exists, no replica of
// NAME is written over (a peer's replica_begin) or removed (a peer's unprotect of a VM that
// is not loaded). Only the peer's unprotect of a copy loaded here that is halted or stale
// (the peer runs the VM in a newer epoch: its disks are newer) clears it. docs/design.md, "Names
// from outside" and the invariant table.
Status WriteWentLiveRecord(const NodeConfig& node, const std::string& vm, uint64_t epoch);
// The epoch the record holds; 0 if there is none. A damaged record is an error naming it.
Result<uint64_t> ReadWentLiveRecord(const NodeConfig& node, const std::string& vm);
Status ClearWentLiveRecord(const NodeConfig& node, const std::string& vm);

}  // namespace ft::daemon
