// ftd-bench-reprotect: what a re-protection costs a running VM, over N rounds in the network
// lab (scripts/lab.sh), on one protected pair.
//
// Each round turns FT off on host A (`ftctl disable`: B's backup goes, A runs on
// unprotected) and on again (`ftctl enable VM` of the running VM: a snapshot of it goes to B,
// whose new backup starts from it). Figures, from ftd's own status (reprotect.*):
//   pause       the guest's pause for the snapshot (stop -> the continuing QEMU answers)
//   protected   the enable request -> protected again (the backup acked the new log)
//   shipped     bytes of the snapshot and the disks sent to the peer
// With --disk-mib N the guest has a data disk of N MiB, all of it written (the worst case
// for the disk's copy). A client reads the guest's stream over one TCP connection
// throughout; a round fails if it breaks.
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ft/replay/process.h"
#include "guest_client.h"
#include "lab.h"
#include "lab_pair.h"
#include "lockstep_pair.h"
#include "stats.h"

namespace ft::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

struct Round {
  double pause_ms = 0, protected_ms = 0, shipped_mib = 0;
};

Status Run(const std::vector<std::string>& argv, std::chrono::seconds timeout) {
  auto out = RunCommand(argv, timeout);
  if (out.exit_code != 0) {
    return Unavailable(fmt::format("{} failed ({}): {}", argv[0], out.exit_code, out.output));
  }
  return Status::Ok();
}

// A copy of the guest's data disk grown to `mib` MiB and written all through past the
// guest's own data, at `path`: both hosts' disks are copied from it.
Status MakeBigDisk(const std::string& path, int mib) {
  std::error_code ec;
  std::filesystem::copy_file(GuestDir() + "/data.qcow2", path,
                             std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return Unavailable(fmt::format("copying the guest's data disk: {}", ec.message()));
  auto size = RunCommand({"qemu-img", "info", "--output=json", path}, 30s);
  json info = json::parse(size.output, nullptr, false);
  uint64_t have = info.is_object() ? info.value("virtual-size", uint64_t{0}) : 0;
  uint64_t want = uint64_t(mib) << 20;
  if (have == 0 || have >= want) return Status::Ok();
  FT_RETURN_IF_ERROR(Run({"qemu-img", "resize", "-q", path, std::to_string(want)}, 60s));
  return Run({"qemu-io", "-f", "qcow2", "-c",
              fmt::format("write -q -P 0x5a {} {}", have, want - have), path},
             600s);
}

Result<Round> OneRound(LockstepPair& p, StreamClient& client) {
  FtdInstance& a = p.primary();
  auto off = a.Ftctl({"disable", p.vm()}, 60s);
  if (off.exit_code != 0) return Unavailable("ftctl disable: " + off.output);
  FT_RETURN_IF_ERROR(Converse(client, 10));
  auto started = Clock::now();
  auto on = a.Ftctl({"enable", p.vm(), "--json"}, 900s);
  if (on.exit_code != 0) return Unavailable("ftctl enable: " + on.output);
  double wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
  json reply = json::parse(on.output, nullptr, false);
  const json& rp = Block(Block(reply, "vm"), "reprotect");
  if (!rp.is_object()) return Internal("ftctl enable answered no re-protection: " + on.output);
  Round r;
  r.pause_ms = double(I64(rp, "pause_ms", -1));
  r.protected_ms = wall_ms;
  r.shipped_mib = double(U64(rp, "bytes_total")) / (1 << 20);
  FT_RETURN_IF_ERROR(Converse(client, 10));
  return r;
}

int Main(int argc, char** argv) {
  CLI::App app{"ftd-bench-reprotect: the pause, time and bytes of re-protecting a running VM"};
  int rounds = 10;
  int disk_mib = 0;
  app.add_option("--rounds", rounds, "disable/enable rounds on one pair")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--disk-mib", disk_mib, "a data disk of this size, all written (0: none)")
      ->check(CLI::Range(0, 16384))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (GuestDir().empty()) {
    std::fprintf(stderr, "the guest is not built (scripts/build.sh)\n");
    return 1;
  }
  auto lab = Lab::Create();
  if (!lab.ok()) {
    std::fprintf(stderr, "lab: %s\n", lab.status().ToString().c_str());
    return 1;
  }
  LockstepOptions options = LabPairOptions(**lab);
  options.vm.data_disk = disk_mib > 0;
  options.both_ways = true;
  std::string big_disk = fmt::format("/tmp/ftd-bench-reprotect-{}.qcow2", getpid());
  if (disk_mib > 0) {
    Status made = MakeBigDisk(big_disk, disk_mib);
    if (!made.ok()) {
      std::fprintf(stderr, "disk: %s\n", made.ToString().c_str());
      std::remove(big_disk.c_str());
      return 1;
    }
    options.vm.data_disk_image = big_disk;
  }
  FailoverPair f;
  Status started = f.Start(**lab, 20, &options);
  std::remove(big_disk.c_str());
  if (!started.ok()) {
    std::fprintf(stderr, "pair: %s\n", started.ToString().c_str());
    return 1;
  }
  std::vector<Round> results;
  for (int i = 1; i <= rounds; ++i) {
    auto r = OneRound(*f.pair, f.client);
    if (!r.ok()) {
      std::fprintf(stderr, "round %d failed: %s\n%s", i, r.status().ToString().c_str(),
                   BothLogs(*f.pair).c_str());
      return 1;
    }
    std::printf(
        "round %2d: paused %6.0f ms, protected %7.0f ms after the enable, %7.1f MiB "
        "shipped\n",
        i, r->pause_ms, r->protected_ms, r->shipped_mib);
    std::fflush(stdout);
    results.push_back(*r);
  }
  auto column = [&](double Round::*field) {
    std::vector<double> v;
    for (const auto& r : results) v.push_back(r.*field);
    return v;
  };
  std::printf(
      "\n%d rounds, 256 MiB guest, %s, stream client on one TCP connection "
      "throughout (line %llu):\n",
      rounds, disk_mib ? fmt::format("a {} MiB data disk", disk_mib).c_str() : "no disk",
      static_cast<unsigned long long>(f.client.last_seq()));
  PrintPercentiles("pause for the snapshot", "ms", column(&Round::pause_ms));
  PrintPercentiles("enable -> protected", "ms", column(&Round::protected_ms));
  PrintPercentiles("shipped", "MiB", column(&Round::shipped_mib));
  return 0;
}

}  // namespace
}  // namespace ft::testing

int main(int argc, char** argv) { return ft::testing::Main(argc, argv); }
