// A libvirt domain as ftd's VM spec. Operators define VMs in libvirt; ftd runs QEMU itself
// (record/replay under TCG), so ImportDomain maps what it can protect into a VmSpec and
// refuses the rest, naming each device and what to use instead. Pure: XML text in, result
// out, no file or libvirt access. docs/operations.md, "libvirt domains", lists the rules.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ft/domain/vm_spec.h"
#include "ft/status.h"

namespace ft::libvirt {

// What a domain's XML does not say but a VmSpec needs: these come from ftd's own config.
struct ImportDefaults {
  std::string qemu_binary = "qemu-system-x86_64";  // ftd's patched QEMU; <emulator> is ignored
  int icount_shift = 5;
};

struct DomainImport {
  domain::VmSpec spec;
  // What was ignored or changed on the way, one sentence each naming the element
  // ("graphics 'vnc' ignored: ftd runs the guest headless"). Safe to protect; worth logging.
  std::vector<std::string> warnings;
};

// Maps a domain's XML (virsh dumpxml --inactive) to a VmSpec. Every refusal found is
// reported at once in one kInvalidArgument status: "domain 'web1': <refusal>" for one,
// "domain 'web1': N problems:\n  - <refusal>\n  - ..." for several; each refusal names the
// device and the alternative. XML that does not parse or is not a <domain> is
// kInvalidArgument too.
Result<DomainImport> ImportDomain(std::string_view domain_xml, const ImportDefaults& defaults);

}  // namespace ft::libvirt
