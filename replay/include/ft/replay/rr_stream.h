// The primary's side of the record log stream: the flush shim's counters, and the rr log
// version of the QEMU build in use (taken from the build, never hard-coded).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "ft/status.h"

namespace ft::replay {

// The counters libftd-rrshim.so publishes in its FTD_RR_COUNTERS file
// (docs/formats/rr-shim-counters.md). Counters only grow; `hold` is ftd's to set.
class RrShimCounters {
 public:
  // `writable`: for ftd, which sets `hold`; readers (tests, benchmarks) map it read-only.
  static Result<RrShimCounters> Open(const std::string& path, bool writable = false);
  RrShimCounters(RrShimCounters&& other) noexcept;
  RrShimCounters& operator=(RrShimCounters&&) = delete;
  RrShimCounters(const RrShimCounters&) = delete;
  ~RrShimCounters();

  uint64_t produced() const;                 // log bytes QEMU has written so far
  uint64_t flushed() const;                  // of those, bytes handed to the FIFO
  uint64_t write_errors() const;             // write() failures: the reader went away
  std::chrono::nanoseconds blocked() const;  // QEMU blocked on a full shim buffer
  bool finished() const;                     // QEMU closed the log
  // Pacing: while held, QEMU waits in its next log write (bytes already written still flow).
  void SetHold(bool hold);
  bool hold() const;

 private:
  RrShimCounters(void* mapping, bool writable) : mapping_(mapping), writable_(writable) {}
  uint64_t Load(int index) const;
  void* mapping_;
  bool writable_ = false;
};

// The environment a recording QEMU needs for the shim.
struct RrShimEnvironment {
  std::string shim_library;  // path of libftd-rrshim.so
  std::string rr_path;       // the rrfile QEMU opens (a FIFO)
  std::string counters_path;
  int flush_us = 500;
  size_t max_buffer = 1 << 20;
};
std::vector<std::string> RrShimEnv(const RrShimEnvironment& env);

// Runs `qemu_binary` once, recording an empty machine to a file in `work_dir`, and returns
// the 4-byte log version it wrote. Record and replay of one VM must use the same build.
Result<uint32_t> ProbeRrVersion(const std::string& qemu_binary, const std::string& work_dir,
                                std::chrono::milliseconds timeout);

}  // namespace ft::replay
