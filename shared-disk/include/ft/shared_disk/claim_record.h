// The claim record's byte format (docs/formats/claim-record.md): a few lines of text, a
// version on the first line and a CRC-32 on the last. Pure functions, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ft/shared_disk/test_and_set.h"
#include "ft/status.h"

namespace ft::shared_disk {

inline constexpr uint32_t kClaimRecordVersion = 1;
inline constexpr size_t kMaxNodeNameBytes = 255;
inline constexpr size_t kMaxReasonBytes = 1024;
// No valid record is larger; a bigger file is not a claim record.
inline constexpr size_t kMaxClaimRecordBytes = 2048;

// 1..kMaxNodeNameBytes bytes, no control characters (a record is line-based).
bool IsValidNodeName(std::string_view node);

// Control characters -> spaces, cut to kMaxReasonBytes (a reason never makes a claim fail).
std::string SanitizeReason(std::string_view reason);

// The bytes of a record (format_version is written as kClaimRecordVersion). The record's
// names must be valid: callers validate first.
std::string EncodeClaimRecord(const ClaimRecord& record);

// Parses and checks a record. Truncated, CRC mismatch, malformed -> DataLoss; a record of a
// newer format version (with a good CRC) -> FailedPrecondition. Messages do not name the
// file: the caller adds it.
Result<ClaimRecord> DecodeClaimRecord(std::string_view bytes);

// "epoch-00000000000000000007.claim"
std::string ClaimFileName(uint64_t epoch);
// The epoch of a record file name, or 0 if `name` is not one.
uint64_t EpochOfClaimFileName(std::string_view name);

}  // namespace ft::shared_disk
