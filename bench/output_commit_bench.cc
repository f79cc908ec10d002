// ftd-bench-output-commit: what output commit costs the VM's network, side by side in one
// run in the network lab (scripts/lab.sh):
//
//   1. without FT: the guest on plain QEMU under one ftd in host A; ftd serves its NIC on
//      the same TAP path, with the gate open (what an operator gets with `ft = off`);
//   2. with FT: the same guest protected by two ftds (A records, B replays), every
//      outbound frame held until the backup acked the log covering it.
//
// From the client namespace: ping RTT, TCP request/response RTT (an echo line on the
// guest's stream service, its periodic stream paused), and TCP throughput (the stream
// service at full rate, every line's sequence and CRC checked). Prints p50/p99, the added
// RTT and the throughput ratio, for each core layout asked for (--cores, core_layout.h:
// the hosts sharing every CPU, or host A's ftd and QEMU on one half of the CPUs and host B's
// on the other, the VM without FT on host A's), then the layouts side by side. The client
// runs on any CPU in both layouts.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "core_layout.h"
#include "guest_client.h"
#include "lab.h"
#include "lab_pair.h"
#include "lockstep_pair.h"
#include "stats.h"

namespace ft::testing {
namespace {

using namespace std::chrono_literals;

struct NetFigures {
  std::vector<double> ping_ms, tcp_rr_ms;
  double throughput_bytes_per_s = 0;
  uint64_t lines = 0;
};

Status Connect(Lab& lab, StreamClient& client) {
  Status s;
  FT_RETURN_IF_ERROR(
      RunInNetns(lab.ns_client(), [&] { s = client.Connect(lab.vm_ip(), 7000, 120s); }));
  return s;
}

Result<NetFigures> Measure(Lab& lab, int pings, int requests, std::chrono::seconds bulk) {
  NetFigures f;
  // The guest's service answering means it has booted; then warm ARP and measure.
  StreamClient rr;
  FT_RETURN_IF_ERROR(Connect(lab, rr));
  FT_RETURN_IF_ERROR(rr.SendEcho("RATE 3600000"));  // the stream pauses: echoes only
  FT_RETURN_IF_ERROR(rr.AwaitEchoes(30s));
  (void)PingRtts(lab, 3);
  FT_ASSIGN_OR_RETURN(f.ping_ms, PingRtts(lab, pings));
  for (int i = 0; i < requests; ++i) {
    auto start = Clock::now();
    FT_RETURN_IF_ERROR(rr.SendEcho(fmt::format("request-{}", i)));
    FT_RETURN_IF_ERROR(rr.AwaitEchoes(30s));
    f.tcp_rr_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  rr.Close();
  {
    StreamClient bulk_client;
    FT_RETURN_IF_ERROR(Connect(lab, bulk_client));
    FT_RETURN_IF_ERROR(bulk_client.SendEcho("RATE 0"));
    FT_RETURN_IF_ERROR(bulk_client.ReadStream(100, 30s));  // the full rate has started
    uint64_t first = bulk_client.last_seq();
    auto start = Clock::now();
    while (Clock::now() - start < bulk) FT_RETURN_IF_ERROR(bulk_client.ReadStream(200, 30s));
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    // "S <seq> <crc8>\n": the average line length over the range read.
    uint64_t last = bulk_client.last_seq();
    double bytes = 0;
    for (uint64_t s = first + 1; s <= last; ++s) bytes += 2 + fmt::formatted_size("{}", s) + 10;
    f.lines = last - first;
    f.throughput_bytes_per_s = bytes / secs;
  }
  return f;
}

void Print(const char* label, const NetFigures& f) {
  std::printf(
      "%-11s ping p50 %.3f ms p99 %.3f ms | TCP RR p50 %.3f ms p99 %.3f ms | "
      "throughput %.1f KiB/s (%llu lines)\n",
      label, Percentile(f.ping_ms, 0.5), Percentile(f.ping_ms, 0.99), Percentile(f.tcp_rr_ms, 0.5),
      Percentile(f.tcp_rr_ms, 0.99), f.throughput_bytes_per_s / 1024,
      static_cast<unsigned long long>(f.lines));
}

// What one layout's runs add, for the side-by-side table.
struct Added {
  double ping_p50 = 0, tcp_rr_p50 = 0, throughput_ratio = 0;
};

// Both runs in one layout; nullopt when one failed (the reason is printed).
std::optional<Added> Run(int pings, int requests, int bulk_s, bool ft_only,
                         const std::string& guest_args, const HostCpus& cpus) {
  auto lab = Lab::Create();
  if (!lab.ok()) {
    std::fprintf(stderr, "lab: %s\n", lab.status().ToString().c_str());
    return std::nullopt;
  }
  GuestVmOptions vm;
  vm.workload = "none";
  vm.data_disk = false;
  vm.bridge = (*lab)->bridge();
  vm.lab_ip = (*lab)->vm_ip() + "/24";
  vm.extra_cmdline = guest_args;
  if (!guest_args.empty()) std::printf("guest kernel arguments added: %s\n", guest_args.c_str());

  NetFigures plain;
  if (!ft_only) {
    auto ftd = FtdInstance::Create("bench-plain");
    if (!ftd.ok()) return std::nullopt;
    (*ftd)->set_cpus(cpus.a);
    if (!(*ftd)->WriteConfig((*ftd)->GuestVmConfig(vm)).ok() ||
        !(*ftd)->Start({}, {}, (*lab)->ns_a()).ok()) {
      std::fprintf(stderr, "without FT: ftd did not start\n");
      return std::nullopt;
    }
    auto f = Measure(**lab, pings, requests, std::chrono::seconds(bulk_s));
    if (!f.ok()) {
      std::fprintf(stderr, "without FT: %s\n%s", f.status().ToString().c_str(),
                   ReadFile((*ftd)->ftd_log()).c_str());
      return std::nullopt;
    }
    plain = *f;
  }
  Print("without FT:", plain);

  NetFigures ft;
  std::string gate;
  {
    LockstepOptions options;
    options.vm = vm;
    options.lab = lab->get();
    options.primary_cpus = cpus.a;
    options.backup_cpus = cpus.b;
    auto pair = StartProtected(options);  // the primary's ftd log is in the error
    if (!pair.ok()) {
      std::fprintf(stderr, "with FT: %s\n", pair.status().ToString().c_str());
      return std::nullopt;
    }
    auto& p = **pair;
    auto f = Measure(**lab, pings, requests, std::chrono::seconds(bulk_s));
    if (!f.ok()) {
      std::fprintf(stderr, "with FT: %s\n", f.status().ToString().c_str());
      return std::nullopt;
    }
    ft = *f;
    auto st = p.Status(p.primary());
    if (st.ok()) {
      const auto& n = (*st)["nic"];
      gate = fmt::format(
          "gate hold p50 {:.3f} ms p99 {:.3f} ms max {:.3f} ms, {} frames, "
          "primary {} (paced {} ms, log {:.0f} KiB/s) {}",
          n.value("gate_delay_p50_us", 0.0) / 1000, n.value("gate_delay_p99_us", 0.0) / 1000,
          n.value("gate_delay_max_us", 0.0) / 1000, U64(n, "gate_released"),
          st->value("ft_state", "?"), U64(*st, "paced_ms"),
          st->value("log_bytes_per_sec", 0.0) / 1024, st->value("ft_note", ""));
    }
  }
  Print("with FT:", ft);
  std::printf("%s\n", gate.c_str());
  Added added;
  added.ping_p50 = Percentile(ft.ping_ms, 0.5) - Percentile(plain.ping_ms, 0.5);
  added.tcp_rr_p50 = Percentile(ft.tcp_rr_ms, 0.5) - Percentile(plain.tcp_rr_ms, 0.5);
  added.throughput_ratio = plain.throughput_bytes_per_s > 0
                               ? ft.throughput_bytes_per_s / plain.throughput_bytes_per_s
                               : 0.0;
  std::printf("added ping RTT:    p50 %+.3f ms  p99 %+.3f ms\n", added.ping_p50,
              Percentile(ft.ping_ms, 0.99) - Percentile(plain.ping_ms, 0.99));
  std::printf("added TCP RR RTT:  p50 %+.3f ms  p99 %+.3f ms\n", added.tcp_rr_p50,
              Percentile(ft.tcp_rr_ms, 0.99) - Percentile(plain.tcp_rr_ms, 0.99));
  std::printf("throughput FT/no-FT: %.3f\n", added.throughput_ratio);
  return added;
}

}  // namespace
}  // namespace ft::testing

int main(int argc, char** argv) {
  using namespace ft::testing;
  CLI::App app{"ftd-bench-output-commit - the VM's network with FT vs without"};
  int pings = 200, requests = 200, bulk_s = 10;
  bool ft_only = false;
  // Tickless, the kernel's default (said explicitly: the lab pair adds nohz=off to an empty
  // command line). The project's QEMU wakes an idle recording guest for an arriving frame.
  std::string guest_args = "nohz=on";
  std::string cores = "both";
  app.add_option("--pings", pings, "pings per run")->check(CLI::Range(10, 10000));
  app.add_option("--requests", requests, "TCP request/responses per run")
      ->check(CLI::Range(10, 10000));
  app.add_option("--bulk-seconds", bulk_s, "TCP throughput run")->check(CLI::Range(2, 120));
  app.add_flag("--ft-only", ft_only, "skip the run without FT (diagnostics)");
  app.add_option("--guest-args", guest_args, "extra guest kernel arguments")->capture_default_str();
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
  std::printf("network lab, guest idle, %u CPUs; client in its own namespace\n",
              std::thread::hardware_concurrency());
  std::vector<std::pair<CoreLayout, Added>> rows;
  for (const auto& [layout, cpus] : *layouts) {
    std::printf("\n== cores %s\n", Describe(layout, cpus).c_str());
    auto added = Run(pings, requests, bulk_s, ft_only, guest_args, cpus);
    if (!added) return 1;
    rows.emplace_back(layout, *added);
  }
  std::printf("\n%-24s", "side by side");
  for (const auto& [layout, a] : rows) std::printf(" %10s", CoreLayoutName(layout));
  std::printf("\n%-24s", "added ping p50 ms");
  for (const auto& [layout, a] : rows) std::printf(" %+10.3f", a.ping_p50);
  std::printf("\n%-24s", "added TCP RR p50 ms");
  for (const auto& [layout, a] : rows) std::printf(" %+10.3f", a.tcp_rr_p50);
  std::printf("\n%-24s", "throughput FT/no-FT");
  for (const auto& [layout, a] : rows) std::printf(" %10.3f", a.throughput_ratio);
  std::printf("\n");
  return 0;
}
