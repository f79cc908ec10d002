#include "ft/shared_disk/claim_record.h"

#include <charconv>
#include <vector>

#include <fmt/format.h>

#include "ft/crc32.h"
#include "ft/names.h"
#include "ft/text_record.h"

namespace ft::shared_disk {
namespace {

constexpr std::string_view kMagic = "ftd-claim-record";
constexpr std::string_view kCrcKey = "crc32 ";
constexpr size_t kCrcLineBytes = 6 + 8 + 1;  // "crc32 " + 8 hex digits + "\n"

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

template <typename T>
bool ParseInteger(std::string_view s, T* out, int base = 10) {
  if (s.empty() || s.size() > 20) return false;
  if (s[0] == '+' || (base == 10 && s.size() > 1 && s[0] == '0')) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, base);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

bool IsValidNodeName(std::string_view node) {
  if (node.empty() || node.size() > kMaxNodeNameBytes) return false;
  for (char c : node) {
    if (ft::IsControlCharacter(c)) return false;
  }
  return true;
}

std::string SanitizeReason(std::string_view reason) {
  std::string out(reason.substr(0, kMaxReasonBytes));
  for (char& c : out) {
    if (ft::IsControlCharacter(c)) c = ' ';
  }
  return out;
}

std::string EncodeClaimRecord(const ClaimRecord& record) {
  std::string body = fmt::format("{} {}\nvm {}\nepoch {}\nwinner {}\nreason {}\nunix_time_ms {}\n",
                                 kMagic, kClaimRecordVersion, record.vm, record.epoch,
                                 record.winner, SanitizeReason(record.reason), record.unix_time_ms);
  return body + fmt::format("{}{:08x}\n", kCrcKey, Crc32(body));
}

Result<ClaimRecord> DecodeClaimRecord(std::string_view bytes) {
  if (bytes.size() > kMaxClaimRecordBytes) {
    return DataLoss(fmt::format("{} bytes, larger than any claim record ({} at most)", bytes.size(),
                                kMaxClaimRecordBytes));
  }
  // The CRC line ends every version of the format, so it is checked before anything else.
  if (bytes.size() < kCrcLineBytes || bytes.back() != '\n') {
    return DataLoss(
        fmt::format("truncated ({} bytes, no complete crc32 line at the end)", bytes.size()));
  }
  std::string_view content = bytes.substr(0, bytes.size() - kCrcLineBytes);
  std::string_view crc_line = bytes.substr(content.size(), kCrcLineBytes - 1);
  uint32_t stored_crc = 0;
  std::string_view crc_hex = crc_line.substr(kCrcKey.size());
  if (crc_line.substr(0, kCrcKey.size()) != kCrcKey ||
      (!content.empty() && content.back() != '\n') || !IsLowerHex(crc_hex) ||
      !ParseInteger(crc_hex, &stored_crc, 16)) {
    return DataLoss(
        fmt::format("truncated ({} bytes, no complete crc32 line at the end)", bytes.size()));
  }
  uint32_t actual_crc = Crc32(content);
  if (actual_crc != stored_crc) {
    return DataLoss(fmt::format(
        "CRC mismatch (record says {:08x}, its {} bytes of content have {:08x}): corrupt",
        stored_crc, content.size(), actual_crc));
  }

  std::vector<std::string_view> lines = SplitLines(content);
  std::string_view value;
  ClaimRecord record;
  if (lines.empty() || !RecordField(lines[0], kMagic, &value) ||
      !ParseInteger(value, &record.format_version)) {
    return DataLoss(fmt::format("not a claim record (first line is not '{} <version>')", kMagic));
  }
  if (record.format_version != kClaimRecordVersion) {
    return FailedPrecondition(
        fmt::format("claim record format version {}; this ftd reads version {} only",
                    record.format_version, kClaimRecordVersion));
  }
  static constexpr std::string_view kKeys[] = {"vm", "epoch", "winner", "reason", "unix_time_ms"};
  if (lines.size() != 1 + std::size(kKeys)) {
    return DataLoss(fmt::format("malformed: {} lines, version {} has {}", lines.size(),
                                kClaimRecordVersion, 1 + std::size(kKeys)));
  }
  std::string_view v[std::size(kKeys)];
  for (size_t i = 0; i < std::size(kKeys); ++i) {
    if (!RecordField(lines[i + 1], kKeys[i], &v[i])) {
      return DataLoss(fmt::format("malformed: line {} is not '{} <value>'", i + 2, kKeys[i]));
    }
  }
  record.vm = std::string(v[0]);
  record.winner = std::string(v[2]);
  record.reason = std::string(v[3]);
  if (!ft::IsValidName(record.vm)) return DataLoss("malformed: invalid vm name");
  if (!ParseInteger(v[1], &record.epoch) || record.epoch == 0) {
    return DataLoss("malformed: epoch is not an integer >= 1");
  }
  if (!IsValidNodeName(record.winner)) return DataLoss("malformed: invalid winner node name");
  if (record.reason.size() > kMaxReasonBytes) return DataLoss("malformed: reason too long");
  // Written by fmt: "-0" is not a form it writes; INT64_MIN is (found by fuzz/claim_record).
  std::string_view time = v[4];
  bool negative = !time.empty() && time[0] == '-';
  if (negative) time.remove_prefix(1);
  uint64_t magnitude = 0;
  const uint64_t limit = static_cast<uint64_t>(INT64_MAX) + (negative ? 1 : 0);
  if (!ParseInteger(time, &magnitude) || magnitude > limit || (negative && magnitude == 0)) {
    return DataLoss("malformed: unix_time_ms is not an integer");
  }
  record.unix_time_ms =
      negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
  return record;
}

std::string ClaimFileName(uint64_t epoch) { return fmt::format("epoch-{:020d}.claim", epoch); }

uint64_t EpochOfClaimFileName(std::string_view name) {
  constexpr std::string_view kPrefix = "epoch-", kSuffix = ".claim";
  if (name.size() != kPrefix.size() + 20 + kSuffix.size() ||
      name.substr(0, kPrefix.size()) != kPrefix ||
      name.substr(name.size() - kSuffix.size()) != kSuffix) {
    return 0;
  }
  std::string_view digits = name.substr(kPrefix.size(), 20);
  uint64_t epoch = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return 0;
  }
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), epoch);
  if (ec != std::errc() || end != digits.data() + digits.size()) return 0;
  return epoch;
}

}  // namespace ft::shared_disk
