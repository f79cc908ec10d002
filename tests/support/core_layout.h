// Where the benchmarks put the two lab hosts on this machine's CPUs.
//
// On real hypervisors the primary and the backup each have a host of their own; in the lab
// both run on this one machine. "shared" leaves every process free to run on any CPU (the
// two hosts compete for all of them); "per-host" gives host A the first half of the CPUs this
// process may use and host B the second half, and pins everything a host runs there: its
// ftd, and through inheritance the ftd's QEMU, the QEMU's threads and the flush shim. The
// VM without FT runs on host A's CPUs, as it would on the primary's hypervisor.
#pragma once

#include <string>
#include <vector>

#include "ft/status.h"

namespace ft::testing {

enum class CoreLayout { kShared, kPerHost };

const char* CoreLayoutName(CoreLayout layout);

// The CPU lists (`taskset -c` syntax, e.g. "0" or "0,1") of the two lab hosts; both "" for
// the shared layout.
struct HostCpus {
  std::string a, b;
};

// The layouts a benchmark's --cores option names ("shared", "per-host" or "both", shared
// first), each with its hosts' CPUs, in the order to run them. Per-host needs at least two
// CPUs this process may use.
struct LayoutToRun {
  CoreLayout layout;
  HostCpus cpus;
};
Result<std::vector<LayoutToRun>> LayoutsToRun(const std::string& cores_option);

// One line for a benchmark's header, e.g. "per-host: host A on CPU 0, host B on CPU 1".
std::string Describe(CoreLayout layout, const HostCpus& cpus);

// `argv` run on `cpus` (through taskset, which execs it in place: the PID is the program's);
// `argv` itself when `cpus` is "".
std::vector<std::string> PinnedTo(const std::string& cpus, std::vector<std::string> argv);

}  // namespace ft::testing
