#include "ft/replay/rr_stream.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "ft/replay/process.h"
#include "ft/replay/qmp_client.h"

namespace ft::replay {
namespace {

// Word indexes, as in the shim's struct counters (docs/formats/rr-shim-counters.md).
enum CounterIndex {
  kMagicWord = 0,
  kProduced,
  kFlushed,
  kWriteErrors,
  kBlockedNs,
  kFinished,
  kIcountLimit,
  kIcount,
  kScanErrors,
  kHeld,
  kCounterWords
};
constexpr size_t kCountersSize = kCounterWords * sizeof(uint64_t);

}  // namespace

Result<RrShimCounters> RrShimCounters::Open(const std::string& path, bool writable) {
  int fd = open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(fmt::format("rr shim counters '{}'", path), errno);
  // The shim creates the file, then sizes it: mapped before that, reading it is SIGBUS.
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(kCountersSize)) {
    close(fd);
    return Unavailable(fmt::format("rr shim counters '{}' are not set up yet", path));
  }
  void* p = mmap(nullptr, kCountersSize, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
                 fd, 0);
  int err = errno;
  close(fd);
  if (p == MAP_FAILED) return ErrnoStatus(fmt::format("mmap rr shim counters '{}'", path), err);
  RrShimCounters c(p, writable);
  if (uint64_t magic = c.Load(kMagicWord); magic != kMagic) {
    if ((magic >> 8) == (kMagic >> 8)) {
      return FailedPrecondition(fmt::format(
          "'{}' holds rr shim counters of layout '{}', this ftd reads '{}': QEMU was started "
          "with a libftd-rrshim.so of another ftd version",
          path, static_cast<char>(magic & 0xff), static_cast<char>(kMagic & 0xff)));
    }
    return DataLoss(
        fmt::format("'{}' holds no rr shim counters (bad magic): was QEMU started "
                    "with the shim preloaded?",
                    path));
  }
  return c;
}

RrShimCounters::RrShimCounters(RrShimCounters&& other) noexcept
    : mapping_(other.mapping_), writable_(other.writable_) {
  other.mapping_ = nullptr;
}

RrShimCounters::~RrShimCounters() {
  if (mapping_) munmap(mapping_, kCountersSize);
}

uint64_t RrShimCounters::Load(int index) const {
  // The shim stores with C11 atomics into the shared page; read them the same way.
  auto* words = static_cast<const std::atomic<uint64_t>*>(mapping_);
  return words[index].load(std::memory_order_acquire);
}

uint64_t RrShimCounters::produced() const { return Load(kProduced); }
uint64_t RrShimCounters::flushed() const { return Load(kFlushed); }
uint64_t RrShimCounters::write_errors() const { return Load(kWriteErrors); }
std::chrono::nanoseconds RrShimCounters::blocked() const {
  return std::chrono::nanoseconds(Load(kBlockedNs));
}
bool RrShimCounters::finished() const { return Load(kFinished) != 0; }
uint64_t RrShimCounters::icount() const { return Load(kIcount); }
bool RrShimCounters::scan_failed() const { return Load(kScanErrors) != 0; }
uint64_t RrShimCounters::icount_limit() const { return Load(kIcountLimit); }
int RrShimCounters::held() const { return static_cast<int>(Load(kHeld)); }
void RrShimCounters::SetIcountLimit(uint64_t limit) {
  assert(writable_ && "RrShimCounters opened read-only");
  static_cast<std::atomic<uint64_t>*>(mapping_)[kIcountLimit].store(limit,
                                                                    std::memory_order_release);
}

std::vector<std::string> RrShimEnv(const RrShimEnvironment& env) {
  return {"LD_PRELOAD=" + env.shim_library, "FTD_RR_PATH=" + env.rr_path,
          "FTD_RR_COUNTERS=" + env.counters_path, "FTD_RR_FLUSH_US=" + std::to_string(env.flush_us),
          "FTD_RR_MAX_BUFFER=" + std::to_string(env.max_buffer)};
}

Result<uint32_t> ProbeRrVersion(const std::string& qemu_binary, const std::string& work_dir,
                                std::chrono::milliseconds timeout) {
  std::string log = work_dir + "/rr-version-probe.bin";
  std::string qmp = work_dir + "/rr-version-probe.qmp";
  std::error_code ec;
  std::filesystem::remove(log, ec);
  std::filesystem::remove(qmp, ec);
  std::vector<std::string> argv = {qemu_binary,
                                   "-machine",
                                   "none",
                                   "-nodefaults",
                                   "-no-user-config",
                                   "-display",
                                   "none",
                                   "-icount",
                                   "shift=5,rr=record,rrfile=" + log,
                                   "-chardev",
                                   "socket,id=qmp0,path=" + qmp + ",server=on,wait=off",
                                   "-mon",
                                   "chardev=qmp0,mode=control"};
  SpawnOptions options;
  options.output_path = work_dir + "/rr-version-probe.out";
  FT_ASSIGN_OR_RETURN(auto qemu, ChildProcess::Spawn(argv, options));
  {
    // QEMU writes the header only on an orderly exit (QMP quit), not on SIGTERM.
    asio::io_context io;
    auto client = QmpClient::Create(io, "rr-version-probe");
    Status s = ConnectBlocking(io, *client, qmp, timeout);
    if (s.ok()) (void)ExecuteBlocking(io, *client, "quit", Json::object(), timeout);
  }
  auto exit = qemu->WaitFor(timeout);
  if (!exit) exit = qemu->Terminate(std::chrono::milliseconds(500));
  std::ifstream in(log, std::ios::binary);
  unsigned char b[4] = {};
  in.read(reinterpret_cast<char*>(b), 4);
  std::string out = TailOfFile(options.output_path, 400);
  std::filesystem::remove(log, ec);
  std::filesystem::remove(qmp, ec);
  std::filesystem::remove(options.output_path, ec);
  if (in.gcount() != 4) {
    return FailedPrecondition(fmt::format("'{}' wrote no record/replay header ({}): {}",
                                          qemu_binary, exit->Describe(), out));
  }
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

}  // namespace ft::replay
