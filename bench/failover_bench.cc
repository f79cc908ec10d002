// ftd-bench-failover: how long a client waits when the primary's host dies, over N drills
// in the network lab (scripts/lab.sh), each from a fresh protected pair.
//
// A client in the lab's client namespace holds one TCP connection to the guest's stream
// service (a line every 20 ms, each checked for sequence and CRC). At T0 host A's links are
// cut (from then on nothing of A reaches anyone), then its ftd and QEMU are SIGKILLed. The
// figure is T0 -> the first byte the client receives after T0, which can only come from
// the new primary on host B. It is split with the new primary's own timestamps
// (`ftctl status --json`, CLOCK_MONOTONIC like this program's clock):
//   detection   T0 -> the backup declares the primary lost (heartbeat timeout)
//   catch-up    lost -> the replayer has executed everything received
//   arbitration lost -> the claim for the next epoch is won (runs beside catch-up)
//   go-live     both done -> QEMU records from the snapshot (replay to the end, savevm,
//               quit, start with -loadvm)
//   network     live -> the client's first byte (announce, the guest's TCP resending)
//
// The drills run in each core layout asked for (--cores, core_layout.h: the hosts sharing
// every CPU, or host A's ftd and QEMU on one half of the CPUs and host B's on the other),
// and a table at the end puts the layouts side by side.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
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

struct Drill {
  double total_ms = 0, detection_ms = 0, catch_up_ms = 0, arbitration_ms = 0, go_live_ms = 0,
         network_ms = 0;
  // go-live's steps: replay to the end of the log, savevm, the replayer's quit and the
  // recording QEMU's start from the snapshot.
  double replay_end_ms = 0, savevm_ms = 0, restart_ms = 0;
};

double Ms(int64_t from_ns, int64_t to_ns) { return static_cast<double>(to_ns - from_ns) / 1e6; }
int64_t Ns(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

Result<Drill> RunDrill(Lab& lab, int heartbeat_timeout_ms, const HostCpus& cpus) {
  FT_ASSIGN_OR_RETURN(auto store, ClaimStore::Create());
  LockstepOptions options = LabPairOptions(lab);
  options.primary_cpus = cpus.a;
  options.backup_cpus = cpus.b;
  options.shared_storage = store->dir();
  options.heartbeat_timeout_ms = heartbeat_timeout_ms;
  FT_ASSIGN_OR_RETURN(auto pair, StartProtected(options));
  StreamClient client;
  FT_RETURN_IF_ERROR(ConnectClient(lab, client));
  FT_RETURN_IF_ERROR(Converse(client, 20));

  // The client keeps reading on this thread (so every byte is taken off the socket as it
  // arrives); the host dies on another, a second from now.
  Result<Clock::time_point> died = Unavailable("the kill did not run");
  std::thread killer([&] {
    std::this_thread::sleep_for(1s);
    died = KillPrimaryHost(lab, *pair);
  });
  Clock::time_point first_byte{};
  Status read;
  auto deadline = Clock::now() + 60s;
  int lines_after = 0;
  while (Clock::now() < deadline && lines_after < 20) {
    read = client.ReadStream(1, 30s);
    if (!read.ok()) break;
    if (died.ok() && client.last_received_at() > *died) {
      if (first_byte == Clock::time_point{}) first_byte = client.last_received_at();
      ++lines_after;
    }
  }
  killer.join();
  FT_RETURN_IF_ERROR(died.status());
  FT_RETURN_IF_ERROR(read);
  if (first_byte == Clock::time_point{})
    return Timeout("no byte reached the client after the kill");
  FT_RETURN_IF_ERROR(client.AwaitEchoes(10s));

  FT_ASSIGN_OR_RETURN(auto st, pair->Status(pair->backup()));
  const auto& f = st["failover"];
  if (!f.is_object() || I64(f, "live_ns") == 0) {
    return Internal("the backup reports no go-live: " + st.dump());
  }
  int64_t t0 = Ns(*died), lost = I64(f, "peer_lost_ns"), caught = I64(f, "caught_up_ns"),
          won = I64(f, "claim_won_ns"), live = I64(f, "live_ns"),
          replay_ended = I64(f, "replay_ended_ns"), saved = I64(f, "snapshot_saved_ns");
  Drill d;
  d.total_ms = Ms(t0, Ns(first_byte));
  d.detection_ms = Ms(t0, lost);
  d.catch_up_ms = Ms(lost, caught);
  d.arbitration_ms = Ms(lost, won);
  d.go_live_ms = Ms(std::max(caught, won), live);
  d.network_ms = Ms(live, Ns(first_byte));
  d.replay_end_ms = Ms(std::max(caught, won), replay_ended);
  d.savevm_ms = Ms(replay_ended, saved);
  d.restart_ms = Ms(saved, live);
  client.Close();
  pair.reset();
  FT_RETURN_IF_ERROR(lab.Run({"restore-host", "a"}));
  return d;
}

int Main(int argc, char** argv) {
  CLI::App app{"ftd-bench-failover: primary host death -> first byte from the new primary"};
  int drills = 10;
  int heartbeat_timeout_ms = 1000;
  app.add_option("--drills", drills, "failovers to measure, each from a fresh pair")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--heartbeat-timeout-ms", heartbeat_timeout_ms, "both ftds' heartbeat_timeout_ms")
      ->check(CLI::Range(100, 10000))
      ->capture_default_str();
  std::string cores = "both";
  app.add_option("--cores", cores, "core layouts: shared, per-host or both")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  setvbuf(stdout, nullptr, _IOLBF, 0);  // progress as it happens, also into a file
  auto layouts = LayoutsToRun(cores);
  if (!layouts.ok()) {
    std::fprintf(stderr, "%s\n", layouts.status().ToString().c_str());
    return 1;
  }
  if (GuestDir().empty()) {
    std::fprintf(stderr, "the guest is not built (scripts/build.sh)\n");
    return 1;
  }
  auto lab = Lab::Create();
  if (!lab.ok()) {
    std::fprintf(stderr, "lab: %s\n", lab.status().ToString().c_str());
    return 1;
  }
  std::vector<std::pair<CoreLayout, std::vector<double>>> totals;
  for (const auto& [layout, cpus] : *layouts) {
    std::printf("\n== cores %s\n", Describe(layout, cpus).c_str());
    std::vector<Drill> results;
    for (int i = 1; i <= drills; ++i) {
      auto d = RunDrill(**lab, heartbeat_timeout_ms, cpus);
      if (!d.ok()) {
        std::fprintf(stderr, "drill %d failed: %s\n", i, d.status().ToString().c_str());
        return 1;
      }
      std::printf(
          "drill %2d: %6.0f ms to the first byte (detection %4.0f, catch-up %3.0f, arbitration "
          "%3.0f, go-live %4.0f = replay-end %3.0f + savevm %3.0f + restart %3.0f, network "
          "%4.0f)\n",
          i, d->total_ms, d->detection_ms, d->catch_up_ms, d->arbitration_ms, d->go_live_ms,
          d->replay_end_ms, d->savevm_ms, d->restart_ms, d->network_ms);
      results.push_back(*d);
    }
    auto column = [&](double Drill::*field) {
      std::vector<double> v;
      for (const auto& d : results) v.push_back(d.*field);
      return v;
    };
    std::printf("\n%d drills, heartbeat_timeout_ms %d, cores %s:\n", drills, heartbeat_timeout_ms,
                CoreLayoutName(layout));
    PrintPercentiles("death -> client's first byte", "ms", column(&Drill::total_ms));
    PrintPercentiles("detection", "ms", column(&Drill::detection_ms));
    PrintPercentiles("catch-up", "ms", column(&Drill::catch_up_ms));
    PrintPercentiles("arbitration (beside it)", "ms", column(&Drill::arbitration_ms));
    PrintPercentiles("go-live", "ms", column(&Drill::go_live_ms));
    PrintPercentiles("  replay to the log's end", "ms", column(&Drill::replay_end_ms));
    PrintPercentiles("  savevm", "ms", column(&Drill::savevm_ms));
    PrintPercentiles("  quit, new QEMU -loadvm", "ms", column(&Drill::restart_ms));
    PrintPercentiles("network (announce, TCP)", "ms", column(&Drill::network_ms));
    totals.emplace_back(layout, column(&Drill::total_ms));
  }
  std::printf("\n%-34s", "side by side");
  for (const auto& [layout, v] : totals) std::printf(" %10s", CoreLayoutName(layout));
  std::printf("\n%-34s", "death -> first byte p50 ms");
  for (const auto& [layout, v] : totals) std::printf(" %10.0f", Percentile(v, 0.5));
  std::printf("\n%-34s", "death -> first byte p99 ms");
  for (const auto& [layout, v] : totals) std::printf(" %10.0f", Percentile(v, 0.99));
  std::printf("\n");
  return 0;
}

}  // namespace
}  // namespace ft::testing

int main(int argc, char** argv) { return ft::testing::Main(argc, argv); }
