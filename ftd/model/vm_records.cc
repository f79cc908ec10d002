#include "vm_records.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "ft/crc32.h"
#include "ft/domain/vm_spec.h"
#include "ft/names.h"
#include "ft/text_record.h"
#include "ft/unique_fd.h"

namespace ft::daemon {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kEpochMagic = "ftd-epoch";
constexpr std::string_view kCrcKey = "crc32 ";
constexpr size_t kCrcHexDigits = 8;

Status FileError(std::string_view what, const std::string& path, int err) {
  return ErrnoStatus(fmt::format("{} '{}'", what, path), err);
}

int SyncFd(int fd, const DurableWriteHooks& hooks) {
  return hooks.fsync ? hooks.fsync(fd) : ::fsync(fd);
}

Status SyncDirectory(const std::string& dir, const DurableWriteHooks& hooks) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return FileError("cannot open directory", dir, errno);
  if (SyncFd(fd.get(), hooks) != 0) return FileError("cannot sync directory", dir, errno);
  return Status::Ok();
}

// mkdir -p, syncing the parent of every directory it creates: a record in a new directory
// survives a power cut only if the directory's own name does.
Status MakeDirectoriesDurably(const fs::path& dir, const DurableWriteHooks& hooks) {
  std::vector<fs::path> missing;
  for (fs::path p = dir; !p.empty(); p = p.parent_path()) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) break;
    if (errno != ENOENT) return FileError("cannot create directory", dir.string(), errno);
    missing.push_back(p);
    if (p == p.parent_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0755) != 0) {
      if (errno == EEXIST) continue;  // made meanwhile: someone else syncs it
      return FileError("cannot create directory", it->string(), errno);
    }
    fs::path parent = it->parent_path();
    FT_RETURN_IF_ERROR(SyncDirectory(parent.empty() ? "." : parent.string(), hooks));
  }
  return Status::Ok();
}

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllDigits(std::string_view s) {
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return !s.empty();
}

// Decimal without sign or leading zeros ("0" itself is fine), fitting in uint64_t.
bool ParseDecimal(std::string_view s, uint64_t* out) {
  if (!AllDigits(s) || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

// What an ftd before the versioned record wrote: the number and a newline.
std::optional<uint64_t> LegacyEpoch(std::string_view bytes) {
  if (!bytes.empty() && bytes.back() == '\n') bytes.remove_suffix(1);
  uint64_t epoch = 0;
  if (!AllDigits(bytes) || bytes.size() > 20) return std::nullopt;
  auto [end, ec] = std::from_chars(bytes.data(), bytes.data() + bytes.size(), epoch);
  if (ec != std::errc() || end != bytes.data() + bytes.size()) return std::nullopt;
  return epoch;
}

}  // namespace

Status WriteFileDurably(const std::string& path, std::string_view bytes, mode_t mode,
                        const DurableWriteHooks& hooks) {
  fs::path parent = fs::path(path).parent_path();
  std::string dir = parent.empty() ? "." : parent.string();
  std::string tmp = path + ".tmp";
  auto failed = [&](std::string_view step, const std::string& what, int err) {
    return ErrnoStatus(fmt::format("cannot write '{}': {} '{}'", path, step, what), err);
  };
  FT_RETURN_IF_ERROR(
      MakeDirectoriesDurably(dir, hooks).WithContext(fmt::format("cannot write '{}'", path)));

  // O_TRUNC, not O_EXCL: a temp file left by a crash mid-write is only ever ours to reuse.
  // O_NOFOLLOW: never write through a link planted under the temp name.
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode));
  if (fd.get() < 0) return failed("open", tmp, errno);
  auto remove_temp = [&](Status s) {
    fd.Close();
    ::unlink(tmp.c_str());
    return s;
  };
  for (size_t done = 0; done < bytes.size();) {
    ssize_t n = hooks.write ? hooks.write(fd.get(), bytes.data() + done, bytes.size() - done)
                            : ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return remove_temp(failed("write", tmp, n < 0 ? errno : EIO));
    done += static_cast<size_t>(n);
  }
  if (SyncFd(fd.get(), hooks) != 0) return remove_temp(failed("sync", tmp, errno));
  if (fd.Close() != 0) return remove_temp(failed("close", tmp, errno));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return remove_temp(failed("rename", tmp, errno));
  }
  return SyncDirectory(dir, hooks)
      .WithContext(fmt::format("'{}' was replaced but may not survive a power cut", path));
}

Status RemoveFileDurably(const std::string& path) {
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return FileError("cannot remove", path, errno);
  }
  std::string dir = fs::path(path).parent_path().string();
  return SyncDirectory(dir.empty() ? "." : dir, {});
}

Result<std::optional<std::string>> ReadSmallFile(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return FileError("cannot read", path, errno);
  }
  std::string bytes;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FileError("cannot read", path, errno);
    if (n == 0) break;
    bytes.append(buf, static_cast<size_t>(n));
    if (bytes.size() > max_bytes) {
      return DataLoss(fmt::format("'{}' is larger than any record ({} bytes at most): corrupt",
                                  path, max_bytes));
    }
  }
  return std::optional<std::string>(std::move(bytes));
}

std::string AppendCrcLine(std::string content, std::string_view line_prefix) {
  uint32_t crc = Crc32(content);
  content += fmt::format("{}{}{:08x}\n", line_prefix, kCrcKey, crc);
  return content;
}

Result<std::string_view> CheckCrcLine(std::string_view bytes, std::string_view line_prefix) {
  const size_t line_bytes = line_prefix.size() + kCrcKey.size() + kCrcHexDigits + 1;
  auto truncated = [&] {
    return DataLoss(fmt::format("truncated ({} bytes, no complete '{}{}' line at the end)",
                                bytes.size(), line_prefix, kCrcKey.substr(0, 5)));
  };
  if (bytes.size() < line_bytes || bytes.back() != '\n') return truncated();
  std::string_view content = bytes.substr(0, bytes.size() - line_bytes);
  std::string_view line = bytes.substr(content.size(), line_bytes - 1);
  std::string_view hex = line.substr(line_prefix.size() + kCrcKey.size());
  uint32_t stored = 0;
  if ((!content.empty() && content.back() != '\n') ||
      line.substr(0, line_prefix.size()) != line_prefix ||
      line.substr(line_prefix.size(), kCrcKey.size()) != kCrcKey || !IsLowerHex(hex) ||
      std::from_chars(hex.data(), hex.data() + hex.size(), stored, 16).ptr !=
          hex.data() + hex.size()) {
    return truncated();
  }
  uint32_t actual = Crc32(content);
  if (actual != stored) {
    return DataLoss(fmt::format(
        "CRC mismatch (record says {:08x}, its {} bytes of content have {:08x}): corrupt", stored,
        content.size(), actual));
  }
  return content;
}

std::string EncodeEpochRecord(std::string_view vm, uint64_t epoch) {
  return AppendCrcLine(
      fmt::format("{} {}\nvm {}\nepoch {}\n", kEpochMagic, kEpochRecordVersion, vm, epoch), "");
}

Result<uint64_t> DecodeEpochRecord(std::string_view bytes, std::string_view vm) {
  if (bytes.size() > kMaxEpochRecordBytes) {
    return DataLoss(fmt::format("{} bytes, larger than any epoch record ({} at most)", bytes.size(),
                                kMaxEpochRecordBytes));
  }
  if (std::optional<uint64_t> legacy = LegacyEpoch(bytes)) {
    if (*legacy == 0) return DataLoss("legacy record holds epoch 0; epochs start at 1");
    return *legacy;
  }
  // Every version ends with the CRC line, so it is checked before the version is read.
  FT_ASSIGN_OR_RETURN(std::string_view content, CheckCrcLine(bytes, ""));
  std::vector<std::string_view> lines = SplitLines(content);
  std::string_view value;
  uint64_t version = 0;
  if (lines.empty() || !RecordField(lines[0], kEpochMagic, &value) ||
      !ParseDecimal(value, &version)) {
    return DataLoss(
        fmt::format("not an epoch record (first line is not '{} <version>')", kEpochMagic));
  }
  if (version != kEpochRecordVersion) {
    return FailedPrecondition(fmt::format(
        "epoch record format version {}, written by a newer ftd; this ftd reads version {} only",
        version, kEpochRecordVersion));
  }
  std::string_view record_vm, epoch_text;
  if (lines.size() != 3 || !RecordField(lines[1], "vm", &record_vm) ||
      !RecordField(lines[2], "epoch", &epoch_text)) {
    return DataLoss(
        fmt::format("malformed: version {} has exactly the lines '{} {}', 'vm <name>', "
                    "'epoch <n>' before its CRC",
                    kEpochRecordVersion, kEpochMagic, kEpochRecordVersion));
  }
  if (record_vm != vm) {
    return DataLoss(fmt::format("record of vm '{}', not '{}'", record_vm, vm));
  }
  uint64_t epoch = 0;
  if (!ParseDecimal(epoch_text, &epoch) || epoch == 0) {
    return DataLoss(fmt::format("malformed: epoch '{}' is not an integer >= 1", epoch_text));
  }
  return epoch;
}

std::string EpochRecordPath(const NodeConfig& node, const std::string& vm) {
  return PathsFor(node, vm).state_dir + "/epoch";
}

namespace {

// An epoch in the epoch record's format at `path` (what: "epoch record"); 0 if there is none.
Result<uint64_t> ReadEpochFile(const std::string& path, const std::string& vm,
                               std::string_view what) {
  FT_ASSIGN_OR_RETURN(std::optional<std::string> bytes, ReadSmallFile(path, kMaxEpochRecordBytes));
  if (!bytes) return uint64_t{0};
  Result<uint64_t> epoch = DecodeEpochRecord(*bytes, vm);
  if (!epoch.ok()) {
    return epoch.status().WithContext(fmt::format("vm '{}': {} '{}'", vm, what, path));
  }
  return epoch;
}

Status WriteEpochFile(const std::string& path, const std::string& vm, uint64_t epoch) {
  if (!ft::IsValidName(vm)) return InvalidArgument(fmt::format("invalid vm name '{}'", vm));
  if (epoch == 0) {
    return InvalidArgument(fmt::format("vm '{}': epoch 0 is not an epoch (they start at 1)", vm));
  }
  return WriteFileDurably(path, EncodeEpochRecord(vm, epoch), 0644)
      .WithContext(fmt::format("vm '{}': epoch {}", vm, epoch));
}

std::string WentLivePath(const NodeConfig& node, const std::string& vm) {
  return PathsFor(node, vm).state_dir + "/went-live";
}

}  // namespace

Result<uint64_t> ReadEpochRecord(const NodeConfig& node, const std::string& vm) {
  return ReadEpochFile(EpochRecordPath(node, vm), vm, "epoch record");
}

Status WriteEpochRecord(const NodeConfig& node, const std::string& vm, uint64_t epoch) {
  return WriteEpochFile(EpochRecordPath(node, vm), vm, epoch);
}

Status WriteWentLiveRecord(const NodeConfig& node, const std::string& vm, uint64_t epoch) {
  return WriteEpochFile(WentLivePath(node, vm), vm, epoch);
}

Result<uint64_t> ReadWentLiveRecord(const NodeConfig& node, const std::string& vm) {
  return ReadEpochFile(WentLivePath(node, vm), vm, "went-live record");
}

Status ClearWentLiveRecord(const NodeConfig& node, const std::string& vm) {
  return RemoveFileDurably(WentLivePath(node, vm));
}

}  // namespace ft::daemon
