// Output commit in the network lab (scripts/lab.sh): the protected VM's NIC runs through
// the primary's ftd, which holds every outbound frame until the backup has acked the log
// that covers it. A client in its own namespace pings the VM and talks to its TCP services;
// a packet capture on the client's side checks, against the backup's own receive
// timestamps, that no frame ever arrived before the backup had the log covering it.
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "frame_capture.h"
#include "guest_client.h"
#include "lab.h"
#include "lab_pair.h"
#include "lockstep_pair.h"

namespace ft::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kVmMac = "52:54:00:12:34:56";  // GuestVmOptions' default NIC

CommandOutput Ping(Lab& lab, int count) {
  return RunCommand({"ip", "netns", "exec", lab.ns_client(), "ping", "-c", std::to_string(count),
                     "-i", "0.2", "-W", "2", lab.vm_ip()},
                    30s);
}

TEST(OutputCommitTest, ClientPingsAndTalksToAProtectedVmThroughTheGate) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  auto lab = Lab::Create();
  SKIP_WITHOUT_LAB(lab);
  LockstepOptions options = LabPairOptions(**lab);
  auto pair = StartProtected(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto& p = **pair;

  StreamClient client;
  ASSERT_TRUE(ConnectClient(**lab, client).ok()) << ReadFile(p.primary().ftd_log());
  Status talked = Converse(client, 200);
  ASSERT_TRUE(talked.ok()) << talked.ToString();
  auto ping = Ping(**lab, 5);
  EXPECT_EQ(ping.exit_code, 0) << ping.output;
  EXPECT_NE(ping.output.find(" 0% packet loss"), std::string::npos) << ping.output;
  std::printf("client: %llu stream lines in sequence, %llu echoes matched\n%s",
              static_cast<unsigned long long>(client.stream_lines()),
              static_cast<unsigned long long>(client.echoes_matched()), ping.output.c_str());

  auto primary = p.Status(p.primary());
  auto backup = p.Status(p.backup());
  ASSERT_TRUE(primary.ok() && backup.ok());
  const auto& pn = (*primary)["nic"];
  const auto& bn = (*backup)["nic"];
  ASSERT_TRUE(pn.is_object()) << primary->dump();
  ASSERT_TRUE(bn.is_object()) << backup->dump();
  std::printf("primary NIC: %s\nbackup NIC: %s\n", pn.dump().c_str(), bn.dump().c_str());
  EXPECT_EQ(pn["outbound"], ProtoName(proto::OUTBOUND_GATED));
  EXPECT_GT(U64(pn, "frames_out"), 200u);
  EXPECT_GT(U64(pn, "frames_in"), 20u);
  EXPECT_EQ(U64(pn, "gate_released_open"), 0u) << "a frame left without an ack";
  EXPECT_EQ(bn["outbound"], ProtoName(proto::OUTBOUND_DROP));
  // QEMU's filter-replay already swallows a replaying guest's frames; ftd would drop any.
  EXPECT_EQ(U64(bn, "frames_out"), 0u);
  EXPECT_TRUE(bn["tap"].get<std::string>().empty()) << "a backup has no port on the network";
  EXPECT_EQ((*primary)["ft_state"], ProtoName(proto::VM_FT_STATE_PROTECTED));

  client.Close();
  Status drained = p.StopPrimaryAndDrain(120s);
  ASSERT_TRUE(drained.ok()) << drained.ToString() << "\n" << ReadFile(p.backup().ftd_log());
  std::string a = p.primary_console(), b = p.backup_console();
  EXPECT_GT(a.size(), 2000u);
  EXPECT_TRUE(a == b) << FirstDifference(a, b);
}

// The backup hangs (SIGSTOP of its ftd): acks stop, so the gate holds the guest's frames
// until the heartbeat timeout says the backup is gone; then the primary runs unprotected,
// the gate opens, the held frames leave in order and the client's stream carries on with
// no gap in its sequence.
TEST(OutputCommitTest, AHungBackupHoldsOutputOnlyUntilTheHeartbeatTimeout) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  auto lab = Lab::Create();
  SKIP_WITHOUT_LAB(lab);
  LockstepOptions options = LabPairOptions(**lab);
  options.heartbeat_timeout_ms = 1000;
  auto pair = StartProtected(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto& p = **pair;
  StreamClient client;
  ASSERT_TRUE(ConnectClient(**lab, client).ok()) << ReadFile(p.primary().ftd_log());
  ASSERT_TRUE(Converse(client, 50).ok());

  pid_t backup_ftd = p.backup().process()->pid();
  ASSERT_EQ(kill(backup_ftd, SIGSTOP), 0);
  auto stopped_at = Clock::now();
  // Read single lines: the longest silence is how long the gate held the stream.
  std::chrono::milliseconds longest{0};
  auto last = Clock::now();
  Status read;
  while (Clock::now() - stopped_at < 4s && read.ok()) {
    read = client.ReadStream(1, 10s);
    auto now = Clock::now();
    longest = std::max(longest, std::chrono::duration_cast<std::chrono::milliseconds>(now - last));
    last = now;
  }
  kill(backup_ftd, SIGCONT);
  ASSERT_TRUE(read.ok()) << read.ToString();
  ASSERT_TRUE(client.SendEcho("after").ok());
  ASSERT_TRUE(client.AwaitEchoes(10s).ok());
  auto status = p.Status(p.primary());
  ASSERT_TRUE(status.ok());
  const auto& nic = (*status)["nic"];
  std::printf("hung backup: longest stream silence %lld ms (heartbeat timeout %d ms); %s\n",
              static_cast<long long>(longest.count()), options.heartbeat_timeout_ms,
              nic.dump().c_str());
  EXPECT_EQ((*status)["ft_state"], ProtoName(proto::VM_FT_STATE_UNPROTECTED));
  EXPECT_GE(longest.count(), 500) << "frames left while nothing acked them";
  EXPECT_LE(longest.count(), options.heartbeat_timeout_ms + 700);
  EXPECT_EQ(nic["outbound"], ProtoName(proto::OUTBOUND_OPEN));
  EXPECT_EQ(U64(nic, "gate_held"), 0u);
  EXPECT_GT(U64(nic, "gate_released_on_open"), 0u)
      << "no frame was held for the hung backup: the gate did not gate";
}

// One line of FTD_TRACE_GATE (vm-network/include/ft/net/guest_nic.h).
struct GateLine {
  uint64_t seq = 0, fnv = 0, produced = 0, covering_end = 0, acked = 0;
  int64_t held_ns = 0, released_ns = 0;
  int open = 0;
};

std::vector<GateLine> ReadGateTrace(const std::string& path) {
  std::vector<GateLine> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    std::istringstream s(line);
    GateLine g;
    s >> g.seq >> std::hex >> g.fnv >> std::dec >> g.produced >> g.covering_end >> g.acked >>
        g.held_ns >> g.released_ns >> g.open;
    if (s) out.push_back(g);
  }
  return out;
}

// FTD_TRACE_LOG_RECEIPTS of the backup: "<end offset> <CLOCK_MONOTONIC ns>" per chunk.
std::vector<std::pair<uint64_t, int64_t>> ReadReceipts(const std::string& path) {
  std::vector<std::pair<uint64_t, int64_t>> out;
  std::ifstream in(path);
  uint64_t end;
  int64_t ns;
  while (in >> end >> ns) out.emplace_back(end, ns);
  return out;
}

TEST(OutputCommitTest, NoFrameReachesTheClientBeforeTheBackupHasTheLogThatCoversIt) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  auto lab = Lab::Create();
  SKIP_WITHOUT_LAB(lab);
  std::string traces = fmt::format("/tmp/ftd-gate-test-{}", getpid());
  std::filesystem::create_directories(traces);
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{traces};
  LockstepOptions options = LabPairOptions(**lab);
  options.channel_delay = 25ms;  // each way: every ack is at least 50 ms after its log
  options.primary_env = {"FTD_TRACE_GATE=" + traces + "/gate"};
  options.backup_env = {"FTD_TRACE_LOG_RECEIPTS=" + traces + "/receipts"};
  auto pair = StartProtected(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto& p = **pair;

  auto capture = FrameCapture::Start((*lab)->ns_client(), "eth0", kVmMac);
  ASSERT_TRUE(capture.ok()) << capture.status().ToString();
  StreamClient client;
  ASSERT_TRUE(ConnectClient(**lab, client).ok()) << ReadFile(p.primary().ftd_log());
  Status talked = Converse(client, 100);
  ASSERT_TRUE(talked.ok()) << talked.ToString();
  auto ping = Ping(**lab, 3);
  EXPECT_EQ(ping.exit_code, 0) << ping.output;
  std::this_thread::sleep_for(200ms);  // the last frames reach the capture
  (*capture)->Stop();
  auto status = p.Status(p.primary());
  ASSERT_TRUE(status.ok());
  EXPECT_EQ((*status)["ft_state"], ProtoName(proto::VM_FT_STATE_PROTECTED)) << status->dump();

  auto frames = (*capture)->frames();
  auto gate = ReadGateTrace(traces + "/gate");
  auto receipts = ReadReceipts(traces + "/receipts");
  ASSERT_GT(frames.size(), 100u);
  ASSERT_FALSE(receipts.empty());
  // Match each captured frame to the gate's release of the same bytes, in order.
  std::map<uint64_t, std::vector<const GateLine*>> by_hash;
  for (const auto& g : gate) by_hash[g.fnv].push_back(&g);
  std::map<uint64_t, size_t> used;
  int matched = 0, unmatched = 0, violations = 0, out_of_order = 0;
  uint64_t last_seq = 0;
  int64_t min_margin_ns = INT64_MAX;
  std::vector<int64_t> margins;
  std::string first_violation;
  for (const auto& f : frames) {
    auto it = by_hash.find(f.fnv64);
    if (it == by_hash.end() || used[f.fnv64] >= it->second.size()) {
      ++unmatched;
      continue;
    }
    const GateLine& g = *it->second[used[f.fnv64]++];
    ++matched;
    EXPECT_EQ(g.open, 0) << "frame " << g.seq << " left through an open gate";
    EXPECT_GE(g.acked, g.covering_end) << "frame " << g.seq;
    EXPECT_GT(g.covering_end, g.produced) << "frame " << g.seq;
    // When did the backup have the log up to covering_end? Its own clock says.
    auto r = std::lower_bound(
        receipts.begin(), receipts.end(), g.covering_end,
        [](const std::pair<uint64_t, int64_t>& x, uint64_t v) { return x.first < v; });
    if (r == receipts.end()) {
      ++violations;
      if (first_violation.empty()) {
        first_violation =
            fmt::format("frame {} needs log {} the backup never received", g.seq, g.covering_end);
      }
      continue;
    }
    int64_t margin = f.received_ns - r->second;
    margins.push_back(margin);
    min_margin_ns = std::min(min_margin_ns, margin);
    if (g.seq <= last_seq) ++out_of_order;
    last_seq = g.seq;
    if (margin < 0) ++violations;
    if (margin < 0 && first_violation.empty()) {
      first_violation =
          fmt::format("frame {} reached the client {} us before the backup received log offset {}",
                      g.seq, -margin / 1000, g.covering_end);
    }
  }
  std::sort(margins.begin(), margins.end());
  std::printf(
      "%zu frames captured at the client, %d matched to gate releases, %d unmatched; "
      "client receipt - backup receipt of the covering log: min %.2f ms, median %.2f ms "
      "(channel delay 25 ms each way)\n",
      frames.size(), matched, unmatched, double(min_margin_ns) / 1e6,
      margins.empty() ? 0.0 : double(margins[margins.size() / 2]) / 1e6);
  EXPECT_EQ(violations, 0) << first_violation;
  EXPECT_EQ(unmatched, 0) << "frames from the VM's MAC that did not pass the gate";
  EXPECT_EQ(out_of_order, 0) << "frames reached the client out of the order the guest sent them";
  EXPECT_GT(matched, 100);
  // The ack takes the delayed way back: nothing can arrive sooner than that after receipt.
  EXPECT_GE(min_margin_ns, 20'000'000) << "a frame was released before the ack could arrive";
}

}  // namespace
}  // namespace ft::testing
