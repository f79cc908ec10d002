// Never two live copies (design rule 3), in the network lab with real QEMU: the ways a
// second copy of a protected VM could start sending, each watched from outside ftd. Both
// copies use one MAC; a packet capture on host A's and host B's ports of the lab's switch
// (`a-vm`, `b-vm`) tells which host put the VM's frames on the network, and both ftds'
// `ftctl status` are sampled side by side: a copy "has its gate open" when its QEMU runs
// and its NIC's outbound is "open" (a protected or arbitrating primary's is "gated").
//
//  - A host that died and comes back after the other went live restarts its ftd with its
//    old config (a config-file VM, and a VM enabled with `ftctl enable`): its copy is stale,
//    never starts, sends nothing, and names the winner; the client stays with the live copy.
//  - `ftctl disable --force` on the primary while the channel is cut, and SIGTERM to the
//    primary's ftd while the channel is cut: one copy ends live, nothing unacked leaves A.
//  - A pair whose hosts disagree about failover (on one side only, or two claim stores) is
//    refused by the channel's handshake instead of running with two arbiters.
//  - `ftctl init-storage --expect-mount` refuses a directory that is not a mount point.
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frame_capture.h"
#include "ftd_instance.h"
#include "guest_client.h"
#include "lab.h"
#include "lab_pair.h"
#include "libvirt_domains.h"
#include "lockstep_pair.h"
#include "temp_dir.h"

namespace ft::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kVmMac = "52:54:00:12:34:56";  // GuestVmOptions' default NIC
// How long ftd may take to stop on SIGTERM: QEMU's quit grace (10 s) and SIGTERM grace (3 s),
// then the wait for the backup's ack of the log's end (5 s); the rest is slack.
constexpr auto kFtdStopBound = 25s;
// A frame the gate released just before the cut may still be on its way through the
// bridges and veths; anything later was released after the cut.
constexpr auto kInFlight = 200ms;

int64_t MonotonicNs(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// The VM's frames a capture saw from `since` on (steady_clock is CLOCK_MONOTONIC, as the
// capture's kernel timestamps are).
struct FramesSeen {
  size_t count = 0;
  std::string first;  // when the first came, for messages
};
FramesSeen FramesAfter(FrameCapture& capture, Clock::time_point since) {
  FramesSeen seen;
  int64_t from = MonotonicNs(since);
  for (const auto& f : capture.frames()) {
    if (f.received_ns < from) continue;
    if (seen.count++ == 0) {
      seen.first = fmt::format("the first {:.0f} ms after, {} bytes",
                               double(f.received_ns - from) / 1e6, f.size);
    }
  }
  return seen;
}

// j[key], or null when j is no object or has no such key.
json Field(const json& j, const std::string& key) {
  return j.is_object() && j.contains(key) ? j.at(key) : json();
}

// j[key] as text: a string's value (an enum's proto name, a 64-bit integer's digits), anything
// else (null when absent) as JSON.
std::string Text(const json& j, const std::string& key) {
  json v = Field(j, key);
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// The client talking to the VM on a thread of its own, round after round (ten stream lines
// and an echo, each checked), until stopped; joined on destruction, whatever happened.
class Talker {
 public:
  explicit Talker(StreamClient& client) : client_(client), thread_([this] { Run(); }) {}
  ~Talker() { (void)Stop(); }
  Talker(const Talker&) = delete;
  Talker& operator=(const Talker&) = delete;

  // Stops after the current round; returns its first error.
  Status Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return status_;
  }
  int rounds() const { return rounds_; }

 private:
  void Run() {
    while (!stop_) {
      Status s = Converse(client_, 10, 20s);
      if (!s.ok()) {
        status_ = s;
        return;
      }
      ++rounds_;
    }
  }

  StreamClient& client_;
  std::atomic<bool> stop_{false};
  std::atomic<int> rounds_{0};
  Status status_;
  std::thread thread_;  // last: starts once the rest exists
};

// Text for failure messages that only the first failure asking for it gets in full (both
// ftds' logs, a status): a message is built only when its check fails, and ten failed checks
// need not print the same logs ten times.
class OnFirstFailure {
 public:
  OnFirstFailure(std::string what, std::function<std::string()> text)
      : what_(std::move(what)), text_(std::move(text)) {}
  std::string operator()() {
    if (given_) return "\n(" + what_ + ": under the first failure)";
    given_ = true;
    return text_();
  }

 private:
  std::string what_;
  std::function<std::string()> text_;
  bool given_ = false;
};

OnFirstFailure LogsOnce(FtdInstance& a, FtdInstance& b) {
  return OnFirstFailure("both ftds' logs", [&a, &b] { return BothLogs(a, b); });
}
OnFirstFailure LogsOnce(LockstepPair& p) { return LogsOnce(p.primary(), p.backup()); }

// Both copies of a VM, sampled one after the other through their control sockets: host A,
// then host B, a few ms apart.
struct Sample {
  Clock::time_point at;
  SideView a, b;
};

struct Watch {
  int samples = 0;
  int both_open = 0;            // samples in which both copies had their gate open
  std::string first_both_open;  // both statuses, the first time
};

// Samples both sides every `period` until `until`, or until `each` returns false.
Watch WatchBothSides(FtdInstance& a, FtdInstance& b, const std::string& vm, Clock::time_point until,
                     std::chrono::milliseconds period,
                     const std::function<bool(const Sample&)>& each = nullptr) {
  Watch w;
  auto started = Clock::now();
  while (Clock::now() < until) {
    Sample s{Clock::now(), ProbeOf(a, vm), ProbeOf(b, vm)};
    ++w.samples;
    if (s.a.gate_open && s.b.gate_open && w.both_open++ == 0) {
      w.first_both_open =
          fmt::format("two copies with their gate open, {} ms into the watch:\n{}: {}\n{}: {}",
                      std::chrono::duration_cast<std::chrono::milliseconds>(s.at - started).count(),
                      a.node_name(), s.a.status.dump(), b.node_name(), s.b.status.dump());
    }
    if (each && !each(s)) break;
    std::this_thread::sleep_until(s.at + period);
  }
  return w;
}

Status WaitForFtState(FtdInstance& side, const std::string& vm, proto::VmFtState state,
                      std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  SideView v;
  while (Clock::now() < deadline) {
    v = ViewOf(side, vm);
    if (v.ft_state == ProtoName(state)) return Status::Ok();
    std::this_thread::sleep_for(100ms);
  }
  return Timeout(fmt::format("'{}' on {} is '{}' after {} ms, expected '{}'", vm, side.node_name(),
                             v.ft_state, timeout.count(), ProtoName(state)));
}

// Host A came back after B's copy went live, and its ftd was just restarted (at
// `restarted_at`) with the config it had. For a minute: no frame of the VM leaves host A,
// A's QEMU never runs, never two open gates, and the client keeps talking to B's copy. Then
// A's copy says it is stale and names B, and B's runs on as the unprotected primary.
void ExpectTheReturningHostStaysStale(Lab& lab, FtdInstance& a, FtdInstance& b,
                                      const std::string& vm, StreamClient& client,
                                      FrameCapture& from_a, Clock::time_point restarted_at) {
  auto logs = LogsOnce(a, b);
  int a_ran = 0;
  std::string a_ran_first;
  Watch w;
  Status talked;
  int rounds = 0;
  {
    Talker talker(client);
    w = WatchBothSides(a, b, vm, restarted_at + 60s, 200ms, [&](const Sample& s) {
      if (s.a.qemu_pid != 0 && a_ran++ == 0) a_ran_first = s.a.status.dump();
      return true;
    });
    talked = talker.Stop();
    rounds = talker.rounds();
  }
  FramesSeen leaked = FramesAfter(from_a, restarted_at);
  EXPECT_EQ(leaked.count, 0u) << "frames from the VM's MAC left host A (switch port a-vm) after "
                                 "its ftd restarted ("
                              << leaked.first << "): a second copy on the network" << logs();
  EXPECT_EQ(w.both_open, 0) << w.both_open << " of " << w.samples << " samples; "
                            << w.first_both_open << logs();
  EXPECT_EQ(a_ran, 0) << "the stale copy's QEMU ran in " << a_ran << " of " << w.samples
                      << " samples; first: " << a_ran_first << logs();
  EXPECT_TRUE(talked.ok()) << "the client lost the live copy while host A was back: "
                           << talked.ToString() << logs();
  Status last = Converse(client, 20, 30s);
  EXPECT_TRUE(last.ok()) << "the live copy on B no longer serves the client: " << last.ToString()
                         << logs();

  auto on_a = a.StatusJson(vm);
  ASSERT_TRUE(on_a.ok()) << on_a.status().ToString() << logs();
  const json& st = *on_a;
  OnFirstFailure why("A's status", [&st] { return "\nA's status: " + st.dump(2); });
  EXPECT_EQ(Text(st, "ft_state"), ProtoName(proto::VM_FT_STATE_STALE)) << why() << logs();
  EXPECT_EQ(Field(st, "qemu_pid"), 0) << why() << logs();
  EXPECT_NE(Text(st, "ft_note").find(b.node_name()), std::string::npos)
      << "the note does not name the host whose copy is live" << why() << logs();
  json fo = Field(st, "failover");
  EXPECT_EQ(Text(fo, "state"), ProtoName(proto::VM_FT_STATE_STALE)) << why() << logs();
  json claim = Field(fo, "newest_claim");
  EXPECT_EQ(U64(claim, "epoch"), 2u) << why() << logs();
  EXPECT_EQ(Text(claim, "winner"), b.node_name()) << why() << logs();
  EXPECT_GT(I64(claim, "unix_time_ms"), 0) << why() << logs();
  json nic = Field(st, "nic");
  EXPECT_TRUE(nic.is_null() || Text(nic, "tap") == "")
      << "the stale copy's NIC is served" << why() << logs();
  auto taps = RunCommand({"ip", "-n", lab.ns_a(), "-o", "link", "show", "type", "tun"}, 10s);
  EXPECT_EQ(taps.output, "") << "host A has a TAP for a VM it does not run" << why() << logs();

  auto on_b = b.StatusJson(vm);
  ASSERT_TRUE(on_b.ok()) << on_b.status().ToString() << logs();
  const json& st_b = *on_b;
  OnFirstFailure why_b("B's status", [&st_b] { return "\nB's status: " + st_b.dump(2); });
  EXPECT_EQ(Text(st_b, "role"), ProtoName(proto::FT_ROLE_PRIMARY)) << why_b() << logs();
  EXPECT_EQ(Text(st_b, "ft_state"), ProtoName(proto::VM_FT_STATE_UNPROTECTED)) << why_b() << logs();
  EXPECT_EQ(U64(st_b, "epoch"), 2u) << why_b() << logs();
  EXPECT_EQ(Text(Field(st_b, "nic"), "outbound"), ProtoName(proto::OUTBOUND_OPEN))
      << why_b() << logs();
  std::printf(
      "host A back for 60 s: %d samples, A's QEMU ran in %d, %zu frames from A, "
      "%d client rounds served by B; A's note: %s\n",
      w.samples, a_ran, leaked.count, rounds, Text(st, "ft_note").c_str());
}

// Host A's ftd, restarted with the config it had plus `max_unacked_mib = 1`: before the fix
// a primary that found no backup ran alone (gate open) once that much log piled up.
Status RestartWithTheOldConfig(FtdInstance& a) {
  return a.Restart(WithNodeSetting(ReadFile(a.config_path()), "max_unacked_mib = 1"));
}

// A small tmpfs mounted (mount -t tmpfs) on a directory of its own for the life of the
// object: unmounted and the directory removed whatever happens. Needs root.
class TmpfsMount {
 public:
  static Result<std::unique_ptr<TmpfsMount>> Create() {
    std::unique_ptr<TmpfsMount> m(new TmpfsMount());
    std::string templ = (fs::temp_directory_path() / "ftd-test-mnt-XXXXXX").string();
    if (!mkdtemp(templ.data())) return ErrnoStatus("mkdtemp", errno);
    m->path_ = templ;
    if (::mount("ftd-test-store", m->path_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                "size=1m,mode=0700") != 0) {
      return ErrnoStatus("mount -t tmpfs on " + m->path_, errno);
    }
    m->mounted_ = true;
    return m;
  }
  ~TmpfsMount() {
    if (mounted_ && ::umount2(path_.c_str(), 0) != 0) ::umount2(path_.c_str(), MNT_DETACH);
    if (!path_.empty()) ::rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  TmpfsMount() = default;
  std::string path_;
  bool mounted_ = false;
};

// The id `ftctl init-storage --json DIR` reports for the claim store in DIR ("" if none).
std::string StoreId(const std::string& dir) {
  auto out = RunCommand({FtctlBinary(), "--json", "init-storage", dir}, 10s);
  json j = json::parse(out.output, nullptr, false);
  json id = Field(j, "store_id");
  return id.is_string() ? id.get<std::string>() : "";
}

TEST(SplitBrainTest, ReturningHostStaysStaleAndOnlyTheLiveCopySends) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  auto lab = Lab::Create();
  SKIP_WITHOUT_LAB(lab);
  FailoverPair f;
  Status started = f.Start(**lab);
  ASSERT_TRUE(started.ok()) << started.ToString();
  auto& p = *f.pair;
  auto logs = LogsOnce(p);

  auto killed = KillPrimaryHost(**lab, p);
  ASSERT_TRUE(killed.ok()) << killed.status().ToString();
  Status live = WaitUntilBackupLive(p, 30s);
  ASSERT_TRUE(live.ok()) << live.ToString();
  Status served = Converse(f.client, 20);
  ASSERT_TRUE(served.ok()) << served.ToString() << logs();

  // Host A comes back (its links up again) and its init system starts its ftd.
  ASSERT_TRUE((*lab)->Run({"restore-host", "a"}).ok());
  auto from_a = FrameCapture::Start((*lab)->ns_switch(), "a-vm", kVmMac);
  ASSERT_TRUE(from_a.ok()) << from_a.status().ToString();
  auto restarted_at = Clock::now();
  Status restarted = RestartWithTheOldConfig(p.primary());
  ASSERT_TRUE(restarted.ok()) << restarted.ToString();
  ExpectTheReturningHostStaysStale(**lab, p.primary(), p.backup(), p.vm(), f.client, **from_a,
                                   restarted_at);
}

// The same with a libvirt domain protected by `ftctl enable`: both ftds have node-only
// configs, and host A's enabled.conf still says its copy is the primary when it comes back.
TEST(SplitBrainTest, ReturningHostStaysStaleWhenTheVmWasEnabledWithFtctl) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  LibvirtdForSuite libvirt = LibvirtdForSuite::Start();
  if (!libvirt.skip.empty()) FT_SKIP_OR_FAIL_IN_CI(libvirt.skip);
  ASSERT_TRUE(libvirt.error.empty()) << libvirt.error;
  auto lab = Lab::Create();
  SKIP_WITHOUT_LAB(lab);
  auto store = ClaimStore::Create();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  TempDir xml_dir(TestDomainPrefix());
  ASSERT_FALSE(xml_dir.path().empty());
  const std::string vm = TestDomainPrefix() + "web";
  auto domain = DefinedDomain::Define(vm, GuestDomainXml(vm, **lab), xml_dir.path());
  ASSERT_TRUE(domain.ok()) << domain.status().ToString();
  auto host_a = FtdInstance::Create("hostA");
  auto host_b = FtdInstance::Create("hostB");
  ASSERT_TRUE(host_a.ok() && host_b.ok());
  FtdInstance& a = **host_a;
  FtdInstance& b = **host_b;
  auto logs = LogsOnce(a, b);
  ASSERT_TRUE(WriteNodeOnlyConfigs(**lab, a, b, (*store)->dir()).ok());
  for (auto [side, ns] : {std::pair{&b, (*lab)->ns_b()}, std::pair{&a, (*lab)->ns_a()}}) {
    ASSERT_TRUE(side->Start({}, {}, ns).ok());
    ASSERT_TRUE(WaitForFileContaining(side->ftd_log(), "logging channel: listening", 30s))
        << side->LogTail();
  }
  auto enabled = a.Ftctl({"enable", vm}, 90s);
  ASSERT_EQ(enabled.exit_code, 0) << enabled.output << logs();
  Status protected_ = WaitForFtState(a, vm, proto::VM_FT_STATE_PROTECTED, 90s);
  ASSERT_TRUE(protected_.ok()) << protected_.ToString() << logs();
  StreamClient client;
  Status talked = ConnectClient(**lab, client);
  if (talked.ok()) talked = Converse(client, 30);
  ASSERT_TRUE(talked.ok()) << talked.ToString() << logs();

  auto killed = KillHost(**lab, "a", a, vm);
  ASSERT_TRUE(killed.ok()) << killed.status().ToString();
  Status live = WaitUntilLive(b, vm, 30s);
  ASSERT_TRUE(live.ok()) << live.ToString();
  Status served = Converse(client, 20);
  ASSERT_TRUE(served.ok()) << served.ToString() << logs();

  ASSERT_TRUE((*lab)->Run({"restore-host", "a"}).ok());
  auto from_a = FrameCapture::Start((*lab)->ns_switch(), "a-vm", kGuestDomainMac);
  ASSERT_TRUE(from_a.ok()) << from_a.status().ToString();
  auto restarted_at = Clock::now();
  Status restarted = RestartWithTheOldConfig(a);
  ASSERT_TRUE(restarted.ok()) << restarted.ToString();
  ExpectTheReturningHostStaysStale(**lab, a, b, vm, client, **from_a, restarted_at);
}

// The operator turns FT off on the primary's host with --force while the channel is cut:
// the peer cannot be told (the request waits out its timeout) and may be going live.
TEST(SplitBrainTest, DisableForceDuringAPartitionNeverOpensTwoGates) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  auto lab = Lab::Create();
  SKIP_WITHOUT_LAB(lab);
  FailoverPair f;
  Status started = f.Start(**lab);
  ASSERT_TRUE(started.ok()) << started.ToString();
  auto& p = *f.pair;
  auto logs = LogsOnce(p);
  auto from_a = FrameCapture::Start((*lab)->ns_switch(), "a-vm", kVmMac);
  auto from_b = FrameCapture::Start((*lab)->ns_switch(), "b-vm", kVmMac);
  ASSERT_TRUE(from_a.ok() && from_b.ok());

  Status talked;
  Watch w;
  CommandOutput disabled;
  Clock::duration disable_took{};
  Clock::time_point cut_at;
  {
    Talker talker(f.client);  // the guest keeps sending
    std::this_thread::sleep_for(500ms);
    ASSERT_TRUE((*lab)->Run({"cut-channel"}).ok());
    cut_at = Clock::now();
    std::jthread disable([&] {
      disabled = p.primary().Ftctl({"disable", "--force", p.vm()}, 40s);
      disable_took = Clock::now() - cut_at;
    });
    w = WatchBothSides(p.primary(), p.backup(), p.vm(), cut_at + 20s, 20ms);
    disable.join();
    talked = talker.Stop();
  }
  EXPECT_EQ(w.both_open, 0) << w.both_open << " of " << w.samples << " samples; "
                            << w.first_both_open << logs();
  FramesSeen on_a = FramesAfter(**from_a, cut_at + kInFlight);
  FramesSeen on_b = FramesAfter(**from_b, cut_at + kInFlight);
  EXPECT_FALSE(on_a.count > 0 && on_b.count > 0)
      << "the VM's MAC sent from both hosts after the cut: " << on_a.count << " frames from A ("
      << on_a.first << "), " << on_b.count << " from B (" << on_b.first << ")" << logs();

  SideView a = View(p, p.primary());
  SideView b = View(p, p.backup());
  EXPECT_EQ(int{a.gate_open} + int{b.gate_open && b.role == ProtoName(proto::FT_ROLE_PRIMARY)}, 1)
      << "not exactly one live copy\nA: " << a.status.dump() << "\nB: " << b.status.dump()
      << "\nftctl disable --force: exit " << disabled.exit_code << ": " << disabled.output
      << logs();
  EXPECT_TRUE(talked.ok()) << talked.ToString() << logs();
  Status more = Converse(f.client, 20, 30s);
  EXPECT_TRUE(more.ok()) << "the live copy does not serve the client: " << more.ToString()
                         << logs();
  std::printf(
      "disable --force: exit %d after %lld ms (%s); live: %s; %d samples (one per %.0f ms); frames "
      "after "
      "the cut: %zu from A, %zu from B\n",
      disabled.exit_code,
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(disable_took).count()),
      disabled.output.substr(0, disabled.output.find('\n')).c_str(),
      a.gate_open ? "A" : (b.gate_open ? "B" : "none"), w.samples, 20000.0 / w.samples, on_a.count,
      on_b.count);
}

// The primary's host is shut down (SIGTERM to its ftd) just as the channel is cut: the log's
// end never reaches the backup, so what the gate still holds was never acknowledged and must
// not leave. The backup goes live and the client carries on with it.
TEST(SplitBrainTest, SigtermWithTheChannelCutReleasesNothingUnacked) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  auto lab = Lab::Create();
  SKIP_WITHOUT_LAB(lab);
  FailoverPair f;
  Status started = f.Start(**lab);
  ASSERT_TRUE(started.ok()) << started.ToString();
  auto& p = *f.pair;
  auto logs = LogsOnce(p);
  auto from_a = FrameCapture::Start((*lab)->ns_switch(), "a-vm", kVmMac);
  ASSERT_TRUE(from_a.ok()) << from_a.status().ToString();

  Status talked;
  Clock::time_point cut_at;
  {
    Talker talker(f.client);  // the guest is sending when the cut comes
    std::this_thread::sleep_for(500ms);
    ASSERT_TRUE((*lab)->Run({"cut-channel"}).ok());
    cut_at = Clock::now();
    auto stopped = p.primary().Stop(kFtdStopBound);
    auto stop_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - cut_at).count();
    ASSERT_TRUE(stopped.ok()) << stopped.status().ToString() << logs();
    EXPECT_TRUE(stopped->clean()) << "A's ftd " << stopped->Describe() << logs();
    Status live = WaitUntilBackupLive(p, 30s);
    ASSERT_TRUE(live.ok()) << live.ToString() << logs();
    std::printf(
        "A's ftd stopped %lld ms after the cut (%s); B live %lld ms after the cut\n",
        static_cast<long long>(stop_ms), stopped->Describe().c_str(),
        static_cast<long long>(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - cut_at).count()));
    std::this_thread::sleep_for(2s);  // the client talks to B's copy a while
    talked = talker.Stop();
  }
  FramesSeen leaked = FramesAfter(**from_a, cut_at + kInFlight);
  EXPECT_EQ(leaked.count, 0u) << "host A sent frames of the VM after the cut (" << leaked.first
                              << "): output the backup never acknowledged" << logs();
  EXPECT_TRUE(talked.ok()) << talked.ToString() << logs();
  Status more = Converse(f.client, 20, 30s);
  EXPECT_TRUE(more.ok()) << "the client's connection did not carry on through B: "
                         << more.ToString() << logs();
  SideView b = View(p, p.backup());
  EXPECT_EQ(b.role, ProtoName(proto::FT_ROLE_PRIMARY)) << b.status.dump();
  EXPECT_EQ(b.epoch, 2u) << "B did not claim the next epoch: " << b.status.dump();
  EXPECT_TRUE(b.gate_open) << b.status.dump();
}

// The backup's host has no shared_storage, the primary's has: failover would run on one side
// only (a primary that arbitrates against a backup that never claims, or the reverse). The
// handshake refuses the pair; once max_unacked_mib of log piled up, A runs alone after
// claiming the next epoch, and B's copy never runs as a primary.
TEST(SplitBrainTest, FailoverOnOneSideOnlyIsRefusedByTheHandshake) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  auto lab = Lab::Create();
  SKIP_WITHOUT_LAB(lab);
  auto store = ClaimStore::Create();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  LockstepOptions options = LabPairOptions(**lab);
  options.shared_storage = (*store)->dir();
  options.backup_shared_storage = "";
  options.max_unacked_mib = 1;
  auto pair = LockstepPair::Start(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto& p = **pair;
  auto logs = LogsOnce(p);

  bool refused = false, ever_protected = false;
  int b_as_primary = 0;
  std::optional<Clock::time_point> alone_at;
  SideView last_a;
  Watch w = WatchBothSides(
      p.primary(), p.backup(), p.vm(), Clock::now() + 45s, 100ms, [&](const Sample& s) {
        last_a = s.a;
        refused |= s.a.ft_note.find("failover differs") != std::string::npos;
        ever_protected |= s.a.ft_state == ProtoName(proto::VM_FT_STATE_PROTECTED);
        if (s.b.role == ProtoName(proto::FT_ROLE_PRIMARY) && s.b.qemu_pid != 0) ++b_as_primary;
        if (!alone_at && s.a.epoch == 2 && s.a.gate_open) alone_at = s.at;
        // A few seconds of both sides after A went on alone.
        return !(refused && alone_at && s.at > *alone_at + 3s);
      });
  EXPECT_TRUE(refused) << "A's ft_note never said 'failover differs'; last: "
                       << last_a.status.dump() << logs();
  EXPECT_FALSE(ever_protected) << "the pair became protected" << logs();
  EXPECT_TRUE(alone_at.has_value())
      << "A did not claim epoch 2 and open its gate; last: " << last_a.status.dump() << logs();
  EXPECT_EQ(w.both_open, 0) << w.first_both_open << logs();
  EXPECT_EQ(b_as_primary, 0) << "B's copy ran as a primary in " << b_as_primary << " samples"
                             << logs();
  std::printf("failover on one side: %d samples; A's note: %s\n", w.samples,
              last_a.ft_note.c_str());
}

// Both hosts have shared_storage, but not the same claim store: each would win its own claim.
TEST(SplitBrainTest, TwoDifferentClaimStoresAreRefusedByTheHandshake) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  auto lab = Lab::Create();
  SKIP_WITHOUT_LAB(lab);
  auto store_a = ClaimStore::Create();
  auto store_b = ClaimStore::Create();
  ASSERT_TRUE(store_a.ok() && store_b.ok());
  LockstepOptions options = LabPairOptions(**lab);
  options.shared_storage = (*store_a)->dir();
  options.backup_shared_storage = (*store_b)->dir();
  auto pair = LockstepPair::Start(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto& p = **pair;
  auto logs = LogsOnce(p);

  std::optional<Clock::time_point> refused_at;
  bool ever_protected = false;
  int b_as_primary = 0;
  SideView last_a;
  Watch w = WatchBothSides(
      p.primary(), p.backup(), p.vm(), Clock::now() + 40s, 100ms, [&](const Sample& s) {
        last_a = s.a;
        if (!refused_at && s.a.ft_note.find("claim store differs") != std::string::npos) {
          refused_at = s.at;
        }
        ever_protected |= s.a.ft_state == ProtoName(proto::VM_FT_STATE_PROTECTED);
        if (s.b.role == ProtoName(proto::FT_ROLE_PRIMARY) && s.b.qemu_pid != 0) ++b_as_primary;
        return !(refused_at && s.at > *refused_at + 3s);
      });
  EXPECT_TRUE(refused_at.has_value())
      << "A's ft_note never said 'claim store differs'; last: " << last_a.status.dump() << logs();
  EXPECT_FALSE(ever_protected) << "the pair became protected" << logs();
  EXPECT_EQ(w.both_open, 0) << w.first_both_open << logs();
  EXPECT_EQ(b_as_primary, 0) << "B's copy ran as a primary in " << b_as_primary << " samples"
                             << logs();
  std::printf("two claim stores: %d samples; A's note: %s\n", w.samples, last_a.ft_note.c_str());
}

// A claim store must be on storage both hosts mount: with --expect-mount, init-storage
// refuses a directory that is not a mount point (a share that failed to mount leaves one,
// and two hosts each claiming on their own disk both win). Needs root to mount a tmpfs.
TEST(SplitBrainTest, InitStorageExpectMountRefusesAPlainDirectory) {
  if (geteuid() != 0) FT_SKIP_OR_FAIL_IN_CI("mounting a tmpfs needs root");
  TempDir plain("ftd-test-store-");
  ASSERT_FALSE(plain.path().empty());
  auto refused = RunCommand({FtctlBinary(), "init-storage", "--expect-mount", plain.path()}, 10s);
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find(plain.path()), std::string::npos) << refused.output;
  EXPECT_NE(refused.output.find("not a mount point"), std::string::npos) << refused.output;
  EXPECT_FALSE(fs::exists(plain.path() + "/ftd-claim-store"))
      << "a refused init-storage made a claim store";

  auto mount = TmpfsMount::Create();
  ASSERT_TRUE(mount.ok()) << mount.status().ToString();
  const std::string& mounted = (*mount)->path();
  auto made = RunCommand({FtctlBinary(), "init-storage", "--expect-mount", mounted}, 10s);
  EXPECT_EQ(made.exit_code, 0) << made.output;
  std::string mounted_id = StoreId(mounted);
  EXPECT_FALSE(mounted_id.empty()) << "ftctl --json init-storage gives no store_id";
  if (!mounted_id.empty()) {
    EXPECT_NE(made.output.find(mounted_id), std::string::npos)
        << "init-storage does not print the store id " << mounted_id << ":\n"
        << made.output;
  }

  // Without --expect-mount any directory will do, and initializing again keeps its id.
  auto first = RunCommand({FtctlBinary(), "init-storage", plain.path()}, 10s);
  auto second = RunCommand({FtctlBinary(), "init-storage", plain.path()}, 10s);
  EXPECT_EQ(first.exit_code, 0) << first.output;
  EXPECT_EQ(second.exit_code, 0) << second.output;
  std::string id = StoreId(plain.path());
  EXPECT_FALSE(id.empty()) << "ftctl --json init-storage gives no store_id";
  if (!id.empty()) {
    EXPECT_NE(first.output.find(id), std::string::npos) << first.output;
    EXPECT_NE(second.output.find(id), std::string::npos) << "a second init-storage changed the "
                                                            "store id:\n"
                                                         << first.output << second.output;
    EXPECT_NE(id, mounted_id) << "two claim stores have the same id";
  }
}

}  // namespace
}  // namespace ft::testing
