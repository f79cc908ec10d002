// A real libvirtd for tests (qemu:///system): started with scripts/libvirtd.sh when none
// answers and stopped afterwards only if started here; domains defined with virsh under a
// per-process name prefix and undefined whatever happens (leftovers of killed runs are
// undefined at the next start). libvirt never runs them: ftd does.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ftd_instance.h"
#include "lab.h"

namespace ft::testing {

// The MAC of GuestDomainXml's NIC (the one FT tests watch on the lab's switch).
inline constexpr const char* kGuestDomainMac = "52:54:00:12:34:56";

// The protectable guest as a libvirt domain: direct kernel boot, one vCPU, an e1000 on the
// lab hosts' bridge, no disk (the guest runs from its initramfs).
std::string GuestDomainXml(const std::string& name, Lab& lab);

// "ftt<pid>-": domains of this test process.
const std::string& TestDomainPrefix();

// virsh -q -c qemu:///system ARGS...
CommandOutput Virsh(const std::vector<std::string>& args);

class Libvirtd {
 public:
  // Why libvirt tests cannot run here ("" when they can): not root, or not installed.
  static std::string SkipReason();
  // Makes sure a libvirtd answers; undefines leftover test domains of dead processes.
  static Result<std::unique_ptr<Libvirtd>> Ensure();
  ~Libvirtd();  // stops libvirtd if Ensure started it

 private:
  explicit Libvirtd(bool started) : started_(started) {}
  bool started_;
};

// What a test suite holds while it uses libvirtd: why it must skip, or why libvirtd could not
// be had, or libvirtd itself.
struct LibvirtdForSuite {
  std::string skip, error;
  std::unique_ptr<Libvirtd> libvirtd;
  static LibvirtdForSuite Start();
};

// A domain defined in libvirt for the life of the object.
class DefinedDomain {
 public:
  static Result<std::unique_ptr<DefinedDomain>> Define(const std::string& name,
                                                       const std::string& xml,
                                                       const std::filesystem::path& dir);
  ~DefinedDomain();
  DefinedDomain(const DefinedDomain&) = delete;
  DefinedDomain& operator=(const DefinedDomain&) = delete;
  const std::string& name() const { return name_; }

 private:
  explicit DefinedDomain(std::string name) : name_(std::move(name)) {}
  std::string name_;
};

}  // namespace ft::testing
