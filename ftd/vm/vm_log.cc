#include "vm_log.h"

namespace ft::daemon {

std::string VmLogPrefix(const std::string& vm, const VmLogPosition& at) {
  std::string where;
  if (at.epoch) where = fmt::format("epoch {}", *at.epoch);
  if (at.log_offset) where += fmt::format("{}log {}", where.empty() ? "" : ", ", *at.log_offset);
  return where.empty() ? fmt::format("vm '{}': ", vm) : fmt::format("vm '{}' ({}): ", vm, where);
}

}  // namespace ft::daemon
