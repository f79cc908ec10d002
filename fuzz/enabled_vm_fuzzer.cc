// enabled.conf, <state_dir>/vms/NAME/enabled.conf (ftd/model/enabled_vms.cc): which VMs a
// restarted ftd runs, and in which role. Its [vm] section comes from a domain's XML or the
// peer, so its text is outside bytes. The first byte says whether the fuzzer gives the rest a
// correct CRC line. Properties: a decoded record has a role; encoding it and decoding again
// gives the same role, source and section (a cmdline line that looks like "# role: primary"
// must not flip the role: issue 19).
#include <string>

#include "enabled_vms.h"
#include "spec_round_trip.h"
#include "vm_records.h"

using ft::daemon::EnabledVm;
using ft::daemon::FtRole;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) bytes = ft::daemon::AppendCrcLine(std::move(bytes), "# ");

  auto vm = ft::daemon::DecodeEnabledVmRecord("enabled.conf", bytes);
  if (!vm.ok()) return 0;
  FT_FUZZ_CHECK(vm->role == FtRole::kPrimary || vm->role == FtRole::kBackup);
  const std::string encoded = ft::daemon::EncodeEnabledVmRecord(*vm);
  auto again = ft::daemon::DecodeEnabledVmRecord("encoded", encoded);
  if (!again.ok()) {
    std::fprintf(stderr, "encoded record does not decode: %s\n--\n%s--\n",
                 again.status().message().c_str(), encoded.c_str());
  }
  FT_FUZZ_CHECK(again.ok());
  FT_FUZZ_CHECK(again->role == vm->role);
  FT_FUZZ_CHECK(ft::fuzz::CheckSectionRoundTrip(again->spec) ==
                ft::fuzz::CheckSectionRoundTrip(vm->spec));
  FT_FUZZ_CHECK(ft::daemon::EncodeEnabledVmRecord(*again) == encoded);
  return 0;
}
