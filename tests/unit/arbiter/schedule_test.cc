// Randomized schedules over the authority (VmArbiter), FoundationDB-style: two hosts, each
// running one copy of a VM under its own arbiter, one fake claim store, a fake channel and
// fake time. Each schedule is a seeded sequence of events in any order: hosts crash and
// come back (with what they recorded on disk), the channel partitions and heals, the store
// goes away or fills up, claims and store reads are answered late or out of order, the
// backup catches up or fails to go live, the operator turns FT off (with or without the
// peer), hands over, drills, ftd stops. After every event:
//  - never two copies with their output gates open for the VM;
//  - a copy's gate is open only while it holds the newest epoch in the store, won by
//    itself (or failover is off on its host: then no copy can ever go live by a claim).
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include <fmt/format.h>

#include "fake_test_and_set.h"
#include "ft/arbiter/vm_arbiter.h"

namespace ft::arbiter {
namespace {

using namespace std::chrono_literals;
using shared_disk::ClaimOutcome;
using shared_disk::ClaimRequest;

constexpr char kVm[] = "web1";

// One host: what it keeps on disk across crashes, and the copy it runs (if ftd is up).
struct HostSim : Actions {
  std::string node;
  bool failover = true;
  // On disk: the role of its record (a backup that went live is promoted) and its epoch.
  Role role = Role::kPrimary;
  uint64_t disk_epoch = 1;
  bool alive = true;      // ftd runs
  bool stopping = false;  // SIGTERM received; the copy ends at the next "exit" event
  std::unique_ptr<VmArbiter> arbiter;
  int reads = 0;
  std::deque<ClaimRequest> claims;
  bool started = false;

  void ReadStore() override { ++reads; }
  void Claim(const ClaimRequest& r) override { claims.push_back(r); }
  Status RecordEpoch(uint64_t epoch) override {
    disk_epoch = std::max(disk_epoch, epoch);
    return Status::Ok();
  }
  void StartCopy(uint64_t) override { started = true; }
  void OpenGate() override {}
  void GoLive(uint64_t) override {}
  void Halt(const std::string&) override {}

  void Boot(TimePoint now) {
    alive = true;
    stopping = false;
    reads = 0;
    claims.clear();
    started = false;
    arbiter = std::make_unique<VmArbiter>(ArbiterConfig{kVm, node, failover, 200ms}, role,
                                          disk_epoch, *this);
    arbiter->Start(now);
  }
  void Die() {
    alive = false;
    arbiter.reset();
    reads = 0;
    claims.clear();
  }
  bool GateOpen() const { return alive && arbiter && arbiter->gate_open(); }
};

class World {
 public:
  explicit World(uint64_t seed) : rng_(seed) {
    hosts_[0].node = "hostA";
    hosts_[0].role = Role::kPrimary;
    hosts_[1].node = "hostB";
    hosts_[1].role = Role::kBackup;
    // Mostly both with a store; sometimes neither; rarely asymmetric (the handshake then
    // keeps them from ever pairing).
    int config = Pick(10);
    hosts_[0].failover = config != 0 && config != 1;
    hosts_[1].failover = config != 0 && config != 2;
    for (auto& h : hosts_) h.Boot(now_);
  }

  // Runs one random event; returns a description for the failure trace.
  std::string Step() {
    int h = Pick(2);
    HostSim& host = hosts_[h];
    HostSim& other = hosts_[1 - h];
    switch (Pick(17)) {
      case 0:
      case 1:
        if (host.alive && host.reads > 0) {
          --host.reads;
          host.arbiter->OnStoreRead(ReadStoreView(store_, kVm), now_);
          return host.node + " store read answered";
        }
        break;
      case 2:
      case 3:
        if (host.alive && !host.claims.empty()) {
          // Claims may be answered out of order between hosts, never within one.
          ClaimRequest r = host.claims.front();
          host.claims.pop_front();
          auto result = store_.Claim(r);
          if (result.ok() && result->won()) won_[result->record.epoch] = r.node;
          host.arbiter->OnClaimResult(result, now_);
          return fmt::format("{} claim of epoch {} answered ({})", host.node, r.epoch,
                             result.ok() ? (result->won() ? "won" : "lost") : "error");
        }
        break;
      case 4:
        if (host.alive && Pick(4) == 0) {
          LoseSession();
          host.Die();
          return host.node + " crashes";
        }
        break;
      case 5:
        if (!host.alive) {
          host.Boot(now_);
          return host.node + " comes back";
        }
        break;
      case 6:
        partitioned_ = !partitioned_;
        if (partitioned_) LoseSession();
        return partitioned_ ? "channel cut" : "channel healed";
      case 7:
        unreachable_ = !unreachable_;
        store_.SetUnreachable(unreachable_);
        return unreachable_ ? "store unreachable" : "store back";
      case 8:
        if (Pick(3) == 0) {
          full_ = !full_;
          store_.SetFull(full_);
          return full_ ? "store full" : "store has space";
        }
        break;
      case 9:
        if (host.alive) {
          host.arbiter->OnGiveUpWaiting("max_unacked_mib", now_);
          return host.node + " gives up waiting";
        }
        break;
      case 10:
        if (host.alive) {
          bool force = Pick(2) == 0;
          if (!force && session_) {
            // Without --force the peer stops its copy first: the channel closes.
            LoseSession();
          }
          (void)host.arbiter->OnTurnFtOff(force ? "disable --force" : "disable", now_);
          return host.node + (force ? " disable --force" : " disable");
        }
        break;
      case 11:
        if (host.alive && !host.stopping && Pick(3) == 0) {
          host.stopping = true;
          host.arbiter->OnStop(now_);
          return host.node + " SIGTERM";
        }
        if (host.alive && host.stopping) {
          LoseSession();
          host.Die();
          return host.node + " ftd exited";
        }
        break;
      case 12:
        if (host.alive && host.arbiter->state() == FtState::kArbitrating) {
          host.arbiter->OnCaughtUp(now_);
          return host.node + " caught up";
        }
        break;
      case 13:
        if (host.alive && host.arbiter->state() == FtState::kGoingLive) {
          bool ok = Pick(5) != 0;
          host.arbiter->OnGoLiveDone(ok ? Status::Ok() : Internal("savevm failed"), now_);
          if (ok) host.role = Role::kPrimary;  // its record is promoted
          return host.node + (ok ? " live" : " go-live failed");
        }
        break;
      case 14:
        if (host.alive && session_ && host.arbiter->role() == Role::kPrimary) {
          // A planned failover, a drill or a QEMU failure: the copy ends without a claim.
          host.arbiter->OnCopyEnded("handed over", now_);
          LoseSession();
          return host.node + " copy ended (handover/drill/failure)";
        }
        break;
      case 15:
        if (host.alive) {
          host.arbiter->CheckStoreAgain(now_);
          return host.node + " re-reads the store (reconnect)";
        }
        break;
      case 16:
        now_ += 100ms;
        for (auto& x : hosts_) {
          if (x.alive) x.arbiter->OnTick(now_);
        }
        TryConnect();
        return "100 ms pass";
    }
    (void)other;
    TryConnect();
    return "nothing";
  }

  // The invariants; an empty string when they hold.
  std::string Check() {
    int open = 0;
    for (auto& h : hosts_) {
      if (!h.GateOpen()) continue;
      ++open;
      if (!h.failover) continue;
      const VmArbiter& a = *h.arbiter;
      uint64_t held = a.state() == FtState::kGoingLive ? a.epoch() + 1 : a.epoch();
      auto newest = won_.empty() ? 0 : won_.rbegin()->first;
      if (newest != held || won_[held] != h.node) {
        return fmt::format(
            "{} has its gate open in epoch {} ({}) but the newest claim is "
            "epoch {} by '{}'",
            h.node, held, FtStateName(a.state()), newest, newest ? won_[newest] : "");
      }
    }
    if (open > 1) return "two copies with their gates open";
    return "";
  }

  std::string Describe() const {
    std::string out;
    for (const auto& h : hosts_) {
      out += fmt::format("{}: {} failover={} ", h.node, h.alive ? "up" : "down", h.failover);
      if (h.arbiter) {
        out += fmt::format("{} {} epoch {} gate={} ({})\n",
                           h.arbiter->role() == Role::kPrimary ? "primary" : "backup",
                           FtStateName(h.arbiter->state()), h.arbiter->epoch(),
                           h.arbiter->gate_open(), h.arbiter->note());
      } else {
        out += "\n";
      }
    }
    return out;
  }

  int gates_opened = 0;  // for the coverage check: schedules that reached a live copy
  void CountLive() {
    for (auto& h : hosts_) {
      if (h.GateOpen()) ++gates_opened;
    }
  }

 private:
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  void LoseSession() {
    if (!session_) return;
    session_ = false;
    for (auto& h : hosts_) {
      if (h.alive) h.arbiter->OnPeerLost("channel lost", now_);
    }
  }

  // The handshake: a primary and a backup, both waiting, same epoch, same failover setting
  // and store, the channel up.
  void TryConnect() {
    if (session_ || partitioned_) return;
    HostSim &a = hosts_[0], &b = hosts_[1];
    if (!a.alive || !b.alive || !a.started || !b.started) return;
    if (a.arbiter->state() != FtState::kWaitingForPeer ||
        b.arbiter->state() != FtState::kWaitingForPeer) {
      return;
    }
    if (a.arbiter->role() == b.arbiter->role()) return;
    if (a.arbiter->epoch() != b.arbiter->epoch() || a.failover != b.failover) return;
    if (a.arbiter->store_id() != b.arbiter->store_id()) return;
    session_ = true;
    a.arbiter->OnPeerConnected(now_);
    b.arbiter->OnPeerConnected(now_);
  }

  std::mt19937_64 rng_;
  fakes::FakeTestAndSet store_;
  std::map<uint64_t, std::string> won_;  // every claim ever won: epoch -> node
  std::array<HostSim, 2> hosts_;
  TimePoint now_ = TimePoint{} + 1h;
  bool session_ = false, partitioned_ = false, unreachable_ = false, full_ = false;
};

TEST(ScheduleTest, NeverTwoOpenGatesNeverOutputWithoutTheNewestEpoch) {
  constexpr int kSchedules = 5000;
  constexpr int kSteps = 300;
  const char* seed_env = std::getenv("FT_SCHEDULE_SEED");
  uint64_t base = seed_env ? std::strtoull(seed_env, nullptr, 10) : 20261206;
  auto deadline = std::chrono::steady_clock::now() + 40s;  // bounded whatever happens
  int schedules_with_live_copy = 0, run = 0;
  for (; run < kSchedules && std::chrono::steady_clock::now() < deadline; ++run) {
    uint64_t seed = base + static_cast<uint64_t>(run);
    World world(seed);
    std::deque<std::string> trace;
    for (int step = 0; step < kSteps; ++step) {
      trace.push_back(world.Step());
      if (trace.size() > 40) trace.pop_front();
      std::string broken = world.Check();
      world.CountLive();
      if (!broken.empty()) {
        std::string last;
        for (const auto& t : trace) last += "  " + t + "\n";
        FAIL() << "seed " << seed << " step " << step << ": " << broken << "\n"
               << world.Describe() << "last events:\n"
               << last << "(rerun with FT_SCHEDULE_SEED=" << seed << ")";
      }
    }
    if (world.gates_opened > 0) ++schedules_with_live_copy;
  }
  EXPECT_EQ(run, kSchedules) << "ran out of time";
  // The schedules must reach the interesting states, not only stall.
  EXPECT_GT(schedules_with_live_copy, run / 2) << "too few schedules ever had a live copy";
  std::printf("%d schedules of %d events; %d reached a copy running alone\n", run, kSteps,
              schedules_with_live_copy);
}

}  // namespace
}  // namespace ft::arbiter
