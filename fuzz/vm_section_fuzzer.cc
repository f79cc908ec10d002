// A [vm NAME] section (ftd/model/config.cc ParseVmSection): how a VM enabled at run time
// travels from ftctl to ftd to the peer's ftd (ProtectRequest.vm_config, outside bytes for
// the receiving host) and how it is kept in enabled.conf. Properties: a parsed spec is valid
// (ValidateVmSpec), and formatting it gives a section that parses to a spec that formats the
// same (Parse(Format(spec)) == spec, compared through the canonical text).
#include <string_view>

#include "ft/daemon/config.h"
#include "spec_round_trip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = ft::daemon::ParseVmSection(text, "fuzz");
  if (spec.ok()) ft::fuzz::CheckSectionRoundTrip(*spec);
  return 0;
}
