// A libvirt domain's XML (libvirt/src/domain_spec.cc ImportDomain, libxml2 underneath): what
// `ftctl enable` turns into a protected VM. Properties: it never crashes; a refusal has a
// message; an imported spec is valid and formats as a [vm] section that parses back (that
// section goes to the peer and into enabled.conf).
#include <string_view>

#include "ft/libvirt/domain_spec.h"
#include "spec_round_trip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view xml(reinterpret_cast<const char*>(data), size);
  auto imported = ft::libvirt::ImportDomain(xml, ft::libvirt::ImportDefaults{});
  if (!imported.ok()) {
    FT_FUZZ_CHECK(!imported.status().message().empty());
    return 0;
  }
  ft::fuzz::CheckSectionRoundTrip(imported->spec);
  return 0;
}
