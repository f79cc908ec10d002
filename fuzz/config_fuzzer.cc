// ftd.conf (ftd/model/config.cc ParseConfig): the node section, channel and storage settings,
// every [vm] section. Written by an operator, but ftd runs as root and must refuse a bad file
// with a message rather than crash. Properties: a parsed config's VMs have distinct valid
// names, and each is a valid spec whose section formats and parses back.
#include <set>
#include <string>

#include "ft/daemon/config.h"
#include "ft/names.h"
#include "spec_round_trip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = ft::daemon::ParseConfig(text, "/etc/ftd/ftd.conf", "/etc/ftd");
  if (!config.ok()) {
    FT_FUZZ_CHECK(!config.status().message().empty());
    return 0;
  }
  std::set<std::string> names;
  for (const auto& vm : config->vms) {
    FT_FUZZ_CHECK(ft::IsValidName(vm.name));
    FT_FUZZ_CHECK(names.insert(vm.name).second);
    ft::fuzz::CheckSectionRoundTrip(vm);
  }
  for (const auto& [name, role] : config->roles) FT_FUZZ_CHECK(names.count(name) == 1);
  return 0;
}
