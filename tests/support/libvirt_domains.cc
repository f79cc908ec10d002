#include "libvirt_domains.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>

#include <fmt/format.h>

namespace ft::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string& TestDomainPrefix() {
  static const std::string prefix = fmt::format("ftt{}-", getpid());
  return prefix;
}

std::string GuestDomainXml(const std::string& name, Lab& lab) {
  return fmt::format(R"(<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{guest}/initrd.img</initrd>
    <cmdline>console=ttyS0 ftguest.ip={ip}/24 ftguest.workload=timer,chaos nohz=off</cmdline>
  </os>
  <devices>
    <interface type='bridge'>
      <mac address='{mac}'/>
      <source bridge='{bridge}'/>
      <model type='e1000'/>
    </interface>
  </devices>
</domain>
)",
                     fmt::arg("name", name), fmt::arg("kernel", GuestKernel()),
                     fmt::arg("guest", GuestDir()), fmt::arg("ip", lab.vm_ip()),
                     fmt::arg("mac", kGuestDomainMac), fmt::arg("bridge", lab.bridge()));
}

CommandOutput Virsh(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"virsh", "-q", "-c", "qemu:///system"};
  argv.insert(argv.end(), args.begin(), args.end());
  // libvirt's first define waits for its QEMU probes when its capability cache is cold.
  return RunCommand(argv, 100s);
}

std::string Libvirtd::SkipReason() {
  if (geteuid() != 0) return "needs root: libvirtd for qemu:///system is a system daemon";
  if (RunCommand({"sh", "-c", "command -v libvirtd && command -v virsh"}, 5s).exit_code != 0) {
    return "libvirtd or virsh is not installed (scripts/install-deps.sh)";
  }
  return "";
}

Result<std::unique_ptr<Libvirtd>> Libvirtd::Ensure() {
  bool started = false;
  if (RunCommand({"bash", FT_LIBVIRTD_SCRIPT, "status"}, 20s).exit_code != 0) {
    auto start = RunCommand({"bash", FT_LIBVIRTD_SCRIPT, "start"}, 60s);
    if (start.exit_code != 0) return Internal("scripts/libvirtd.sh start failed: " + start.output);
    started = true;
  }
  // Domains of earlier runs that were killed before they could clean up (ctest timeout).
  auto list = Virsh({"list", "--all", "--name"});
  std::regex ours("ftt([0-9]+)-.*");
  std::istringstream names(list.output);
  for (std::string name; std::getline(names, name);) {
    std::smatch m;
    if (std::regex_match(name, m, ours) && !fs::exists("/proc/" + m[1].str())) {
      Virsh({"undefine", name});
    }
  }
  return std::unique_ptr<Libvirtd>(new Libvirtd(started));
}

LibvirtdForSuite LibvirtdForSuite::Start() {
  LibvirtdForSuite suite;
  suite.skip = Libvirtd::SkipReason();
  if (!suite.skip.empty()) return suite;
  auto libvirtd = Libvirtd::Ensure();
  if (!libvirtd.ok()) {
    suite.error = libvirtd.status().ToString();
  } else {
    suite.libvirtd = std::move(libvirtd).value();
  }
  return suite;
}

Libvirtd::~Libvirtd() {
  if (!started_) return;
  auto stop = RunCommand({"bash", FT_LIBVIRTD_SCRIPT, "stop"}, 30s);
  if (stop.exit_code != 0)
    std::fprintf(stderr, "scripts/libvirtd.sh stop: %s\n", stop.output.c_str());
}

Result<std::unique_ptr<DefinedDomain>> DefinedDomain::Define(const std::string& name,
                                                             const std::string& xml,
                                                             const fs::path& dir) {
  fs::path file = dir / (name + ".xml");
  std::ofstream(file) << xml;
  auto define = Virsh({"define", file.string()});
  if (define.exit_code != 0)
    return Internal(fmt::format("virsh define {}: {}", name, define.output));
  return std::unique_ptr<DefinedDomain>(new DefinedDomain(name));
}

DefinedDomain::~DefinedDomain() {
  auto undefine = Virsh({"undefine", name_});
  if (undefine.exit_code != 0) {
    std::fprintf(stderr, "virsh undefine %s: %s\n", name_.c_str(), undefine.output.c_str());
  }
}

}  // namespace ft::testing
