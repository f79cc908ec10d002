#include "core_layout.h"

#include <sched.h>

#include <cerrno>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace ft::testing {

namespace {

Result<std::vector<CoreLayout>> ParseCoreLayouts(const std::string& text) {
  if (text == "shared") return std::vector<CoreLayout>{CoreLayout::kShared};
  if (text == "per-host") return std::vector<CoreLayout>{CoreLayout::kPerHost};
  if (text == "both") return std::vector<CoreLayout>{CoreLayout::kShared, CoreLayout::kPerHost};
  return InvalidArgument("--cores: '" + text + "' is not one of shared, per-host, both");
}

Result<HostCpus> CpusFor(CoreLayout layout) {
  if (layout == CoreLayout::kShared) return HostCpus{};
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return ErrnoStatus("sched_getaffinity", errno);
  std::vector<int> usable;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) usable.push_back(cpu);
  }
  if (usable.size() < 2) {
    return FailedPrecondition(fmt::format(
        "one core per host needs at least 2 usable CPUs; this process may use {}", usable.size()));
  }
  size_t half = usable.size() / 2;
  std::vector<int> a(usable.begin(), usable.begin() + static_cast<std::ptrdiff_t>(half));
  std::vector<int> b(usable.begin() + static_cast<std::ptrdiff_t>(half), usable.end());
  return HostCpus{fmt::format("{}", fmt::join(a, ",")), fmt::format("{}", fmt::join(b, ","))};
}

}  // namespace

const char* CoreLayoutName(CoreLayout layout) {
  return layout == CoreLayout::kShared ? "shared" : "per-host";
}

Result<std::vector<LayoutToRun>> LayoutsToRun(const std::string& cores_option) {
  FT_ASSIGN_OR_RETURN(auto layouts, ParseCoreLayouts(cores_option));
  std::vector<LayoutToRun> runs;
  for (CoreLayout layout : layouts) {
    FT_ASSIGN_OR_RETURN(auto cpus, CpusFor(layout));
    runs.push_back({layout, cpus});
  }
  return runs;
}

std::string Describe(CoreLayout layout, const HostCpus& cpus) {
  if (layout == CoreLayout::kShared) return "shared: both hosts may run on every CPU";
  return fmt::format("per-host: host A on CPU {}, host B on CPU {}", cpus.a, cpus.b);
}

std::vector<std::string> PinnedTo(const std::string& cpus, std::vector<std::string> argv) {
  if (cpus.empty()) return argv;
  argv.insert(argv.begin(), {"taskset", "-c", cpus});
  return argv;
}

}  // namespace ft::testing
