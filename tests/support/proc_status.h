// Figures from a process's /proc/PID/status (and its threads'), for tests that bound what a
// process costs: resident memory, and how often a thread went to sleep.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace ft::testing {

// Resident memory (VmRSS) in KiB; -1 if the process or the field is gone.
long VmRssKib(pid_t pid);

// Context switches of thread `tid` of `pid` so far, voluntary and not: each time it slept
// (or was preempted). The main thread's tid is the pid. nullopt if either count is missing.
std::optional<uint64_t> ContextSwitches(pid_t pid, pid_t tid);

}  // namespace ft::testing
