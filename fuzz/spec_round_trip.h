// The property every target that ends in a VmSpec checks: the spec is valid, and its [vm]
// section (what travels to the peer and into enabled.conf) parses back to a spec that formats
// the same. Returns the section.
#pragma once

#include <cstdio>
#include <string>

#include "ft/daemon/config.h"
#include "ft/domain/vm_spec.h"
#include "fuzz_support.h"

namespace ft::fuzz {

inline std::string CheckSectionRoundTrip(const domain::VmSpec& spec) {
  FT_FUZZ_CHECK(domain::ValidateVmSpec(spec).ok());
  const std::string section = daemon::FormatVmSection(spec);
  auto parsed = daemon::ParseVmSection(section, "formatted");
  if (!parsed.ok()) {
    std::fprintf(stderr, "the formatted section does not parse: %s\n--\n%s--\n",
                 parsed.status().message().c_str(), section.c_str());
  }
  FT_FUZZ_CHECK(parsed.ok());
  const std::string again = daemon::FormatVmSection(*parsed);
  if (again != section) {
    std::fprintf(stderr, "the section formats differently once parsed:\n--\n%s--\n%s--\n",
                 section.c_str(), again.c_str());
  }
  FT_FUZZ_CHECK(again == section);
  return section;
}

}  // namespace ft::fuzz
