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
// (docs/formats/rr-shim-counters.md). Counters only grow; `icount_limit` is ftd's to set.
class RrShimCounters {
 public:
  // The layout version this build reads ("ftdrrsh2"); Open refuses any other.
  static constexpr uint64_t kMagic = 0x6674647272736832ULL;

  // `writable`: for ftd, which sets the limit; readers (tests, benchmarks) map it read-only.
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
  // Instructions in the complete events QEMU has written: the log's icount as QEMU wrote
  // it, ahead of what ftd has read. Frozen once the shim met bytes it cannot scan.
  uint64_t icount() const;
  bool scan_failed() const;
  // Pacing: while icount() > limit (0 = no limit), QEMU's vCPU waits before its next log
  // event; bytes already written still flow. Never applies to QEMU's main thread.
  void SetIcountLimit(uint64_t limit);
  uint64_t icount_limit() const;
  int held() const;  // QEMU threads waiting for the limit right now

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
  // How often the shim hands what QEMU wrote to the FIFO; a frame the guest sends is
  // flushed at once after its next log event whatever the period (docs/benchmarks.md,
  // "The shim's flush period": 2 ms took the one-core pair's CPU-bound time from 36.8 s to
  // 30.5 s against 500 us, mean of 2 runs each, with ping and TCP request/response no worse).
  int flush_us = 2000;
  size_t max_buffer = 1 << 20;
};
std::vector<std::string> RrShimEnv(const RrShimEnvironment& env);

// Runs `qemu_binary` once, recording an empty machine to a file in `work_dir`, and returns
// the 4-byte log version it wrote. Record and replay of one VM must use the same build.
Result<uint32_t> ProbeRrVersion(const std::string& qemu_binary, const std::string& work_dir,
                                std::chrono::milliseconds timeout);

}  // namespace ft::replay
