// ftd-bench-lockstep: the cost of virtual lockstep, measured side by side in one run.
//
//   1. without FT: the guest's CPU-bound workload (N rounds) on plain QEMU with the same
//      -icount shift, no record/replay;
//   2. with FT: the same guest protected by two real ftd processes (record -> logging
//      channel on loopback -> live replay).
//
// Prints the boot time (start to the guest's "ftguest: ready" line) and its ratio, the
// workload's time ratio, log bandwidth, the backup's lag (p50/p99, sampled from the
// primary's ftctl status every 250 ms), and the delay from a log byte being written by QEMU
// (the flush shim's `produced` counter, polled every 100 us during the workload's first 5 s)
// to the backup's ftd receiving it (the backup's FTD_TRACE_LOG_RECEIPTS trace).
//
// Both runs are made in each core layout asked for (--cores, core_layout.h): "shared" (the
// two hosts compete for every CPU) and "per-host" (host A's ftd and QEMU on one half of the
// CPUs, host B's on the other; the VM without FT on host A's); a table at the end puts the
// layouts side by side.
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "core_layout.h"
#include "ft/replay/process.h"
#include "ft/replay/qemu_command.h"
#include "ft/replay/rr_stream.h"
#include "guest_client.h"
#include "lockstep_pair.h"
#include "stats.h"

namespace ft::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// When `line` first appears in `console` (polled every 5 ms), or a timeout at `deadline`;
// `timeout` is the caller's whole wait, for the message.
Result<Clock::time_point> WaitForLine(const std::string& console, const std::string& line,
                                      Clock::time_point deadline, std::chrono::seconds timeout) {
  while (Clock::now() < deadline) {
    if (ReadFile(console).find(line) != std::string::npos) return Clock::now();
    std::this_thread::sleep_for(5ms);
  }
  return Timeout(
      fmt::format("'{}' did not appear in {} within {} s", line, console, timeout.count()));
}
Result<Clock::time_point> WaitForLine(const std::string& console, const std::string& line,
                                      std::chrono::seconds timeout) {
  return WaitForLine(console, line, Clock::now() + timeout, timeout);
}

double SecondsSince(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double>(end - start).count();
}

// Seconds between the console lines `from` and `to` appearing, both within `timeout`;
// `started` (optional) gets the moment `from` was seen.
Result<double> TimeBetween(const std::string& console, const std::string& from,
                           const std::string& to, std::chrono::seconds timeout,
                           std::atomic<int64_t>* started = nullptr) {
  auto deadline = Clock::now() + timeout;
  FT_ASSIGN_OR_RETURN(auto start, WaitForLine(console, from, deadline, timeout));
  if (started) *started = NowNs();
  FT_ASSIGN_OR_RETURN(auto end, WaitForLine(console, to, deadline, timeout));
  return SecondsSince(start, end);
}

// The guest's init prints this once its services listen and its workload has started.
constexpr char kReadyLine[] = "ftguest: ready";

std::string Workload(int rounds) { return fmt::format("cpu ftguest.cpu_rounds={}", rounds); }

struct PlainResult {
  double boot_seconds = 0;  // QEMU started -> kReadyLine
  double seconds = 0;       // the workload
};

// 1. The same guest on plain QEMU with the same icount shift, on `cpus` ("" = any).
Result<PlainResult> RunWithoutFt(int rounds, const std::string& cpus) {
  char templ[] = "/tmp/ftd-bench-plain-XXXXXX";
  if (!mkdtemp(templ)) return ErrnoStatus("mkdtemp", errno);
  std::string dir = templ;
  domain::VmSpec spec;
  spec.name = "bench";
  spec.kernel = GuestKernel();
  spec.qemu_binary = QemuBinary();
  spec.initrd = GuestDir() + "/initrd.img";
  spec.cmdline = "console=ttyS0 ftguest.workload=" + Workload(rounds);
  replay::LaunchPaths paths{dir + "/qmp.sock", dir + "/console.log", "", "", "", ""};
  replay::LaunchOptions launch;
  launch.plain_with_icount = true;
  replay::SpawnOptions options;
  options.output_path = dir + "/qemu.log";
  auto started = Clock::now();
  auto qemu = replay::ChildProcess::Spawn(
      PinnedTo(cpus, replay::BuildQemuCommand(spec, launch, paths)), options);
  if (!qemu.ok()) return qemu.status();
  PlainResult result;
  auto ready = WaitForLine(paths.console_log, kReadyLine, 300s);
  auto t = ready.ok() ? TimeBetween(paths.console_log, "cpu: round 1 ", "cpu: done", 900s)
                      : Result<double>(ready.status());
  (*qemu)->Terminate(1s);
  fs::remove_all(dir);
  if (!t.ok()) return t.status();
  result.boot_seconds = SecondsSince(started, *ready);
  result.seconds = *t;
  return result;
}

struct FtResult {
  double boot_seconds = 0;  // both ftds started -> kReadyLine on the primary's console
  double seconds = 0;
  uint64_t log_bytes = 0;
  std::vector<double> lag_ms, delay_ms;
  uint64_t paced_ms = 0;
  bool identical = false;
};

// How long the log-write -> backup delay is sampled (from the workload's start), and how
// often the lag is asked for (each time an `ftctl status` process): the samplers run on the
// machine's two cores beside the QEMUs they measure.
constexpr int64_t kDelayWindowNs = 5'000'000'000;
constexpr auto kLagSamplePeriod = std::chrono::milliseconds(250);

// 2. The same guest under two ftds, host A's on `cpus.a` and host B's on `cpus.b`.
Result<FtResult> RunWithFt(int rounds, int max_lag_ms, const HostCpus& cpus) {
  FtResult result;
  LockstepOptions options;
  options.vm.name = "bench";
  options.vm.workload = Workload(rounds);
  options.vm.data_disk = false;
  options.max_lag_ms = max_lag_ms;
  char trace_templ[] = "/tmp/ftd-bench-receipts-XXXXXX";
  int trace_fd = mkstemp(trace_templ);
  if (trace_fd < 0) return ErrnoStatus("mkstemp", errno);
  close(trace_fd);
  std::string trace = trace_templ;
  options.backup_env = {"FTD_TRACE_LOG_RECEIPTS=" + trace};
  options.primary_cpus = cpus.a;
  options.backup_cpus = cpus.b;
  auto started = Clock::now();
  FT_ASSIGN_OR_RETURN(auto pair, LockstepPair::Start(options));

  // Produced-offset samples from the primary's shim counters, every 100 us, for the first
  // kDelayWindowNs of the workload only: the poller's ~10,000 wake-ups a second take CPU from
  // the QEMU on the core the scheduler puts it on.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> measuring_since{0};
  std::vector<std::pair<uint64_t, int64_t>> produced;  // offset, first seen at
  std::thread poller([&] {
    std::string path = pair->primary().run_dir() + "/bench/rr-counters";
    std::optional<replay::RrShimCounters> counters;
    uint64_t last = 0;
    while (!stop) {
      int64_t since = measuring_since.load();
      if (since != 0 && NowNs() - since > kDelayWindowNs) break;
      if (!counters) {
        auto c = replay::RrShimCounters::Open(path);
        if (c.ok()) counters.emplace(std::move(c).value());
      } else if (uint64_t p = counters->produced(); p > last) {
        produced.emplace_back(p, NowNs());
        last = p;
      }
      std::this_thread::sleep_for(100us);
    }
  });
  uint64_t bytes_at_start = 0;
  std::thread lag_sampler([&] {
    while (!stop) {
      auto st = pair->Status(pair->primary());
      if (st.ok() && st->value("ft_state", "") == ProtoName(proto::VM_FT_STATE_PROTECTED)) {
        if (measuring_since.load() == 0) bytes_at_start = U64(*st, "log_bytes");
        if (measuring_since.load() != 0) result.lag_ms.push_back(st->value("lag_ms", 0.0));
      }
      std::this_thread::sleep_for(kLagSamplePeriod);
    }
  });
  auto ready = WaitForLine(pair->primary().console_log("bench"), kReadyLine, 600s);
  if (ready.ok()) result.boot_seconds = SecondsSince(started, *ready);
  auto t = ready.ok() ? TimeBetween(pair->primary().console_log("bench"), "cpu: round 1 ",
                                    "cpu: done", 900s, &measuring_since)
                      : Result<double>(ready.status());
  auto st = pair->Status(pair->primary());
  stop = true;
  poller.join();
  lag_sampler.join();
  if (!t.ok()) return t.status();
  result.seconds = *t;
  if (st.ok()) {
    result.log_bytes = U64(*st, "log_bytes") - bytes_at_start;  // the workload's
    result.paced_ms = U64(*st, "paced_ms");
  }
  FT_RETURN_IF_ERROR(pair->StopPrimaryAndDrain(300s));
  result.identical = pair->primary_console() == pair->backup_console();

  // Join: each produced sample's delay = first receipt covering its offset - when produced.
  std::ifstream in(trace);
  std::vector<std::pair<uint64_t, int64_t>> receipts;
  uint64_t end;
  int64_t at;
  while (in >> end >> at) receipts.emplace_back(end, at);
  size_t r = 0;
  for (const auto& [offset, when] : produced) {
    if (when < measuring_since.load()) continue;  // boot: not the workload
    while (r < receipts.size() && receipts[r].first < offset) ++r;
    if (r == receipts.size()) break;
    result.delay_ms.push_back(static_cast<double>(receipts[r].second - when) / 1e6);
  }
  fs::remove(trace);
  return result;
}

}  // namespace
}  // namespace ft::testing

int main(int argc, char** argv) {
  using namespace ft::testing;
  CLI::App app{"ftd-bench-lockstep - virtual lockstep vs the same VM without FT"};
  int rounds = 20;
  int max_lag_ms = 2000;
  std::string cores = "both";
  app.add_option("--rounds", rounds, "CPU workload rounds")->check(CLI::Range(1, 10000));
  app.add_option("--max-lag-ms", max_lag_ms, "the pair's lag bound (guest ms)");
  app.add_option("--cores", cores, "core layouts: shared, per-host or both")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  setvbuf(stdout, nullptr, _IOLBF, 0);  // progress as it happens, also into a file
  auto layouts = LayoutsToRun(cores);
  if (!layouts.ok()) {
    std::fprintf(stderr, "%s\n", layouts.status().ToString().c_str());
    return 1;
  }
  if (GuestDir().empty()) {
    std::fprintf(stderr, "guest not built: run scripts/build.sh first\n");
    return 1;
  }
  std::printf("workload: guest cpu, %d rounds, -icount shift=5; %u CPUs\n", rounds,
              std::thread::hardware_concurrency());
  struct Row {
    CoreLayout layout;
    PlainResult plain;
    FtResult ft;
  };
  std::vector<Row> rows;
  bool identical = true;
  for (const auto& [layout, cpus] : *layouts) {
    std::printf("\n== cores %s\n", Describe(layout, cpus).c_str());
    auto plain = RunWithoutFt(rounds, cpus.a);
    if (!plain.ok()) {
      std::fprintf(stderr, "without FT: %s\n", plain.status().ToString().c_str());
      return 1;
    }
    std::printf("without FT: boot %.2f s, workload %.2f s\n", plain->boot_seconds, plain->seconds);
    auto ft = RunWithFt(rounds, max_lag_ms, cpus);
    if (!ft.ok()) {
      std::fprintf(stderr, "with FT: %s\n", ft.status().ToString().c_str());
      return 1;
    }
    std::printf("with FT:    boot %.2f s, workload %.2f s (primary paced %.2f s, incl. boot)\n",
                ft->boot_seconds, ft->seconds, static_cast<double>(ft->paced_ms) / 1000);
    std::printf("boot ratio FT/no-FT:        %.3f\n", ft->boot_seconds / plain->boot_seconds);
    std::printf("time ratio FT/no-FT:        %.3f\n", ft->seconds / plain->seconds);
    std::printf("log bandwidth:              %.1f KiB/s (%llu bytes)\n",
                static_cast<double>(ft->log_bytes) / 1024 / ft->seconds,
                static_cast<unsigned long long>(ft->log_bytes));
    std::printf("lag (guest ms):             p50 %.1f  p99 %.1f  (%zu samples, bound %d)\n",
                Percentile(ft->lag_ms, 0.5), Percentile(ft->lag_ms, 0.99), ft->lag_ms.size(),
                max_lag_ms);
    std::printf("log write -> backup (ms):   p50 %.3f  p99 %.3f  max %.3f  (%zu samples)\n",
                Percentile(ft->delay_ms, 0.5), Percentile(ft->delay_ms, 0.99),
                Percentile(ft->delay_ms, 1.0), ft->delay_ms.size());
    std::printf("backup console identical:   %s\n", ft->identical ? "yes" : "NO");
    identical = identical && ft->identical;
    rows.push_back({layout, *plain, *ft});
  }
  std::printf("\n%-28s", "side by side");
  for (const Row& r : rows) std::printf(" %12s", CoreLayoutName(r.layout));
  std::printf("\n%-28s", "boot FT/no-FT");
  for (const Row& r : rows) std::printf(" %12.3f", r.ft.boot_seconds / r.plain.boot_seconds);
  std::printf("\n%-28s", "CPU-bound time FT/no-FT");
  for (const Row& r : rows) std::printf(" %12.3f", r.ft.seconds / r.plain.seconds);
  std::printf("\n%-28s", "lag p99 (guest ms)");
  for (const Row& r : rows) std::printf(" %12.1f", Percentile(r.ft.lag_ms, 0.99));
  std::printf("\n%-28s", "log write -> backup p99 ms");
  for (const Row& r : rows) std::printf(" %12.3f", Percentile(r.ft.delay_ms, 0.99));
  std::printf("\n");
  return identical ? 0 : 1;
}
