// The claim record on shared storage (shared-disk/src/claim_record.cc): whoever can write the
// claim directory can put any bytes there. The first byte picks how the rest is used: as the
// whole file, or as content the fuzzer gives a correct CRC line (to get past the CRC and
// into the fields). Properties: a record that decodes encodes back to the same bytes (its
// reason sanitized the way Encode does) and decodes again to itself.
#include <fmt/format.h>

#include <string>

#include "ft/crc32.h"
#include "ft/names.h"
#include "ft/shared_disk/claim_record.h"
#include "fuzz_support.h"

using ft::shared_disk::ClaimRecord;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) bytes += fmt::format("crc32 {:08x}\n", ft::Crc32(bytes));

  auto decoded = ft::shared_disk::DecodeClaimRecord(bytes);
  if (!decoded.ok()) return 0;
  const ClaimRecord& r = *decoded;
  FT_FUZZ_CHECK(ft::IsValidName(r.vm));
  FT_FUZZ_CHECK(ft::shared_disk::IsValidNodeName(r.winner));
  FT_FUZZ_CHECK(r.epoch >= 1);
  FT_FUZZ_CHECK(ft::shared_disk::EpochOfClaimFileName(ft::shared_disk::ClaimFileName(r.epoch)) ==
                r.epoch);

  ClaimRecord expected = r;
  expected.reason = ft::shared_disk::SanitizeReason(r.reason);
  const std::string encoded = ft::shared_disk::EncodeClaimRecord(r);
  if (expected.reason == r.reason) FT_FUZZ_CHECK(encoded == bytes);
  auto again = ft::shared_disk::DecodeClaimRecord(encoded);
  FT_FUZZ_CHECK(again.ok());
  FT_FUZZ_CHECK(*again == expected);
  return 0;
}
