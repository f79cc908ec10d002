// The claim store's marker file (docs/formats/claim-record.md): what tells a claim store from
// an empty mount point, and since version 2 the store's identity, which the two hosts compare
// in their handshake so that they never decide failovers on two different stores. Pure
// functions, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ft/status.h"

namespace ft::shared_disk {

inline constexpr uint32_t kStoreMarkerVersion = 2;
// A store id: 128 random bits as lowercase hex.
inline constexpr size_t kStoreIdHexChars = 32;
// No valid marker is larger; a bigger file is not a marker.
inline constexpr size_t kMaxStoreMarkerBytes = 256;
// What an ftd before version 2 wrote: no id, no CRC.
inline constexpr std::string_view kStoreMarkerV1 = "ftd-claim-store 1\n";

struct StoreMarker {
  uint32_t format_version = 0;  // 1: made by an older ftd, no id; 2: with id
  std::string id;               // kStoreIdHexChars lowercase hex; "" in version 1

  bool operator==(const StoreMarker&) const = default;
};

// kStoreIdHexChars lowercase hex digits.
bool IsValidStoreId(std::string_view id);

// The bytes of a version-2 marker for `id` (which must be valid: IsValidStoreId).
std::string EncodeStoreMarker(std::string_view id);

// Parses and checks a marker: exactly kStoreMarkerV1 is version 1; anything else must be a
// sealed (CRC-checked) marker of version 2. Truncated, CRC mismatch, malformed -> DataLoss; a
// newer version with a good CRC -> FailedPrecondition. Messages do not name the file: the
// caller adds it.
Result<StoreMarker> DecodeStoreMarker(std::string_view bytes);

}  // namespace ft::shared_disk
