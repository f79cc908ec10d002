#include "ft/shared_disk/store_marker.h"

#include <cassert>
#include <charconv>

#include <fmt/format.h>

#include "ft/crc32.h"

namespace ft::shared_disk {
namespace {

constexpr std::string_view kMagic = "ftd-claim-store ";
constexpr std::string_view kIdKey = "id ";
constexpr std::string_view kCrcKey = "crc32 ";
constexpr size_t kCrcLineBytes = 6 + 8 + 1;  // "crc32 " + 8 hex digits + "\n"

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The next '\n'-terminated line of `text` without its '\n'; false if there is none.
bool NextLine(std::string_view* text, std::string_view* line) {
  size_t nl = text->find('\n');
  if (nl == std::string_view::npos) return false;
  *line = text->substr(0, nl);
  text->remove_prefix(nl + 1);
  return true;
}

}  // namespace

bool IsValidStoreId(std::string_view id) { return id.size() == kStoreIdHexChars && IsLowerHex(id); }

std::string EncodeStoreMarker(std::string_view id) {
  assert(IsValidStoreId(id));
  std::string body = fmt::format("{}{}\n{}{}\n", kMagic, kStoreMarkerVersion, kIdKey, id);
  return body + fmt::format("{}{:08x}\n", kCrcKey, Crc32(body));
}

Result<StoreMarker> DecodeStoreMarker(std::string_view bytes) {
  if (bytes == kStoreMarkerV1) return StoreMarker{1, ""};
  if (bytes.size() > kMaxStoreMarkerBytes) {
    return DataLoss(fmt::format("{} bytes, larger than any claim store marker ({} at most)",
                                bytes.size(), kMaxStoreMarkerBytes));
  }
  // As in a claim record, the CRC line ends every sealed version, so it is checked first.
  const std::string truncated =
      fmt::format("truncated ({} bytes, no complete crc32 line at the end)", bytes.size());
  if (bytes.size() < kCrcLineBytes || bytes.back() != '\n') return DataLoss(truncated);
  std::string_view content = bytes.substr(0, bytes.size() - kCrcLineBytes);
  std::string_view crc_line = bytes.substr(content.size(), kCrcLineBytes - 1);
  std::string_view crc_hex = crc_line.substr(kCrcKey.size());
  uint32_t stored_crc = 0;
  if (crc_line.substr(0, kCrcKey.size()) != kCrcKey ||
      (!content.empty() && content.back() != '\n') || !IsLowerHex(crc_hex) ||
      std::from_chars(crc_hex.data(), crc_hex.data() + crc_hex.size(), stored_crc, 16).ec !=
          std::errc()) {
    return DataLoss(truncated);
  }
  uint32_t actual_crc = Crc32(content);
  if (actual_crc != stored_crc) {
    return DataLoss(fmt::format(
        "CRC mismatch (marker says {:08x}, its {} bytes of content have {:08x}): corrupt",
        stored_crc, content.size(), actual_crc));
  }

  std::string_view line;
  StoreMarker marker;
  std::string_view version;
  if (!NextLine(&content, &line) || line.substr(0, kMagic.size()) != kMagic ||
      (version = line.substr(kMagic.size())).empty() || version.size() > 9 ||
      (version.size() > 1 && version[0] == '0') ||
      std::from_chars(version.data(), version.data() + version.size(), marker.format_version).ptr !=
          version.data() + version.size()) {
    return DataLoss("not a claim store marker (first line is not 'ftd-claim-store <version>')");
  }
  if (marker.format_version > kStoreMarkerVersion) {
    return FailedPrecondition(
        fmt::format("claim store marker format version {}; this ftd reads versions 1 and {} only",
                    marker.format_version, kStoreMarkerVersion));
  }
  if (marker.format_version != kStoreMarkerVersion) {
    // Version 1 was never sealed: a CRC line on it means the bytes are not what ftd wrote.
    return DataLoss(fmt::format("malformed: a sealed marker of version {}", marker.format_version));
  }
  if (!NextLine(&content, &line) || line.substr(0, kIdKey.size()) != kIdKey ||
      !IsValidStoreId(line.substr(kIdKey.size()))) {
    return DataLoss(
        fmt::format("malformed: line 2 is not 'id <{} lowercase hex digits>'", kStoreIdHexChars));
  }
  marker.id = std::string(line.substr(kIdKey.size()));
  if (!content.empty()) return DataLoss("malformed: more than 2 lines before the crc32 line");
  return marker;
}

}  // namespace ft::shared_disk
