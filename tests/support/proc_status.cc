#include "proc_status.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include <fmt/format.h>

namespace ft::testing {

long VmRssKib(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

std::optional<uint64_t> ContextSwitches(pid_t pid, pid_t tid) {
  std::ifstream in(fmt::format("/proc/{}/task/{}/status", pid, tid));
  std::string key;
  uint64_t total = 0, value = 0;
  int found = 0;
  while (in >> key) {
    if (key == "voluntary_ctxt_switches:" || key == "nonvoluntary_ctxt_switches:") {
      if (!(in >> value)) return std::nullopt;
      total += value;
      ++found;
    }
  }
  if (found != 2) return std::nullopt;
  return total;
}

}  // namespace ft::testing
