// The epoch record, <state_dir>/vms/NAME/epoch (ftd/model/vm_records.cc): the epoch a VM's copy
// may run in, so a damaged one must be refused, never misread. The first byte picks the VM
// name it is checked against and whether the fuzzer gives the rest a correct CRC line.
// Properties: a decoded epoch is >= 1; a record that decodes and is in the current format
// encodes back to the same bytes; every encoded record decodes to its epoch.
#include <string>

#include "fuzz_support.h"
#include "vm_records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* const kVms[] = {"web1", "a", "db-2.x_y"};
  const std::string vm = kVms[(data[0] >> 1) % 3];
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) bytes = ft::daemon::AppendCrcLine(std::move(bytes), "");

  auto epoch = ft::daemon::DecodeEpochRecord(bytes, vm);
  if (!epoch.ok()) return 0;
  FT_FUZZ_CHECK(*epoch >= 1);
  const std::string encoded = ft::daemon::EncodeEpochRecord(vm, *epoch);
  if (bytes.rfind("ftd-epoch ", 0) == 0) FT_FUZZ_CHECK(encoded == bytes);
  auto again = ft::daemon::DecodeEpochRecord(encoded, vm);
  FT_FUZZ_CHECK(again.ok() && *again == *epoch);
  return 0;
}
