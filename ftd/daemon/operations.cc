#include "operations.h"

#include <asio.hpp>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "enabled_vms.h"
#include "ft/daemon/vm_runner.h"
#include "ft/disk/image_digest.h"
#include "ft/log.h"
#include "ft/proto/control.pb.h"
#include "ft/proto/field_rules.h"
#include "ft/proto/peer.pb.h"
#include "ft/replay/vm_state_drive.h"
#include "peer_link.h"
#include "replica_transfer.h"
#include "reprotection.h"
#include "roles.h"
#include "vm_records.h"

namespace ft::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

static_assert(static_cast<int>(net::Outbound::kGated) == proto::OUTBOUND_GATED &&
                  static_cast<int>(net::Outbound::kOpen) == proto::OUTBOUND_OPEN &&
                  static_cast<int>(net::Outbound::kDrop) == proto::OUTBOUND_DROP &&
                  proto::Outbound_MAX == 3,
              "net::Outbound crosses to the wire by a cast");
using Clock = std::chrono::steady_clock;
using proto::ControlResponse;
using proto::PeerResponse;

constexpr auto kPeerCallTimeout = 10s;
constexpr auto kDrainTimeout = 10s;
constexpr auto kPeerLivePoll = 20ms;
constexpr auto kDefaultLiveTimeout = 30s;
// reprotect = auto: how often VMs that run unprotected are looked at, and how long after a
// failed attempt the next one waits (doubling up to the maximum).
constexpr auto kReprotectPoll = 2s;
constexpr auto kReprotectRetryFirst = 5s;
constexpr auto kReprotectRetryMax = 60s;

proto::VmStatus DescribeVm(const ManagedVm& vm,
                           std::optional<ReprotectReport> reprotect = std::nullopt) {
  VmReport r = vm.Report();
  if (reprotect) r.reprotect = std::move(reprotect);
  proto::VmStatus s;
  s.set_name(r.name);
  s.set_state(static_cast<proto::RunState>(r.state));
  s.set_mode(r.mode);
  s.set_qemu_pid(r.qemu_pid);
  s.set_uptime_ms(r.uptime_ms);
  s.set_console_log(r.console_log);
  s.set_monitor_socket(r.monitor_socket);
  s.set_last_error(r.last_error);
  s.set_role(static_cast<proto::FtRole>(r.role));
  s.set_ft_state(static_cast<proto::VmFtState>(r.ft_state));
  s.set_ft_note(r.ft_note);
  s.set_epoch(r.epoch);
  s.set_peer(r.peer);
  s.set_log_bytes(r.log_bytes);
  s.set_acked_bytes(r.acked_bytes);
  s.set_log_bytes_per_sec(r.log_bytes_per_sec);
  s.set_log_icount(r.log_icount);
  s.set_replayed_icount(r.replayed_icount);
  s.set_lag_instructions(r.lag_instructions);
  s.set_lag_ms(r.lag_ms);
  s.set_last_ack_ms_ago(r.last_ack_ms_ago);
  s.set_paced_ms(r.paced_ms);
  s.set_channel_rtt_us(r.channel_rtt_us);
  if (r.nic) {
    const net::NicStats& n = *r.nic;
    auto* nic = s.mutable_nic();
    nic->set_tap(n.tap);
    nic->set_guest_connected(n.guest_connected);
    nic->set_outbound(static_cast<proto::Outbound>(n.outbound));
    nic->set_frames_out(n.frames_out);
    nic->set_bytes_out(n.bytes_out);
    nic->set_frames_in(n.frames_in);
    nic->set_bytes_in(n.bytes_in);
    nic->set_gate_held(n.gate.held_frames);
    nic->set_gate_released(n.gate.released);
    nic->set_gate_released_open(n.gate.released_open);
    nic->set_gate_released_on_open(n.gate.released_on_open);
    nic->set_gate_delay_p50_us(n.gate.DelayPercentileUs(50));
    nic->set_gate_delay_p99_us(n.gate.DelayPercentileUs(99));
    nic->set_gate_delay_max_us(std::chrono::duration<double, std::micro>(n.gate.max_delay).count());
    nic->set_dropped_gate_full(n.gate.dropped_full);
    nic->set_dropped_malformed(n.dropped_malformed);
    nic->set_dropped_host_runts(n.dropped_host_runts);
    nic->set_dropped_no_guest(n.dropped_no_guest);
    nic->set_dropped_queue_full(n.dropped_queue_full);
    nic->set_dropped_no_log_position(n.dropped_no_log_position);
    nic->set_dropped_backup(n.dropped_backup);
    nic->set_dropped_tap_errors(n.dropped_tap_errors);
  }
  if (r.failover) {
    const FailoverReport& f = *r.failover;
    auto* fo = s.mutable_failover();
    fo->set_state(static_cast<proto::VmFtState>(f.state));
    fo->set_shared_storage(f.shared_storage);
    fo->set_claims_sent(f.claims_sent);
    fo->set_peer_lost_ns(f.peer_lost_ns);
    fo->set_caught_up_ns(f.caught_up_ns);
    fo->set_claim_won_ns(f.claim_won_ns);
    fo->set_replay_ended_ns(f.replay_ended_ns);
    fo->set_snapshot_saved_ns(f.snapshot_saved_ns);
    fo->set_live_ns(f.live_ns);
    fo->set_store_id(f.store_id);
    if (f.newest_epoch) {
      auto* newest = fo->mutable_newest_claim();
      newest->set_epoch(f.newest_epoch);
      newest->set_winner(f.newest_winner);
      newest->set_reason(f.newest_reason);
      newest->set_unix_time_ms(f.newest_unix_ms);
    }
  }
  if (r.reprotect) {
    const ReprotectReport& p = *r.reprotect;
    auto* rp = s.mutable_reprotect();
    rp->set_phase(p.phase);
    rp->set_bytes_sent(p.bytes_sent);
    rp->set_bytes_total(p.bytes_total);
    rp->set_pause_ms(p.pause_ms);
    rp->set_elapsed_ms(p.elapsed_ms);
    rp->set_note(p.note);
  }
  return s;
}

// "primary, protected" for messages.
std::string RoleAndState(const ManagedVm& vm) {
  VmReport r = vm.Report();
  return fmt::format("{}, {}", FtRoleName(r.role), VmFtStateName(r.ft_state));
}

// The epoch in the VM's state dir (0: never protected here). A damaged record is an error
// naming the file: enabling over it could pick an epoch older than the pair's real one.
Result<uint64_t> StoredEpoch(const NodeConfig& node, const std::string& vm) {
  return ReadEpochRecord(node, vm);
}

double MsSinceStart(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

struct Operations::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io_context, const Config& c, std::vector<std::unique_ptr<ManagedVm>>& v)
      : io(io_context), config(c), node(c.node), vms(v), log(Logger("ops")) {}

  asio::io_context& io;
  const Config& config;
  const NodeConfig& node;
  std::vector<std::unique_ptr<ManagedVm>>& vms;
  std::shared_ptr<spdlog::logger> log;
  std::set<std::string> busy;          // VMs with an operation in progress
  ReplicaReceiver replicas{io, node};  // disk replicas the peer is sending for its enables
  asio::steady_timer replica_sweep{io};
  bool stopping = false;  // ftd got SIGTERM: no new VMs
  // Re-protections under way, and the last outcome of each VM's (for status).
  std::map<std::string, std::shared_ptr<Reprotection>> reprotecting;
  std::map<std::string, ReprotectReport> last_reprotect;
  struct Retry {
    Clock::time_point not_before{};
    Clock::duration wait = kReprotectRetryFirst;
  };
  std::map<std::string, Retry> reprotect_retry;
  asio::steady_timer reprotect_timer{io};
  // The peer side of re-protections: received replicas checked and put in place, by VM.
  std::map<std::string, std::unique_ptr<BackgroundWork>> protect_prep;
  // An enable's records being written, by VM (EnableWithBackup).
  std::map<std::string, std::unique_ptr<BackgroundWork>> record_writes;

  // A VM's status, with its re-protection (under way, or the last one).
  proto::VmStatus Describe(const ManagedVm& vm) const {
    if (auto it = reprotecting.find(vm.name()); it != reprotecting.end()) {
      return DescribeVm(vm, it->second->report());
    }
    if (auto it = last_reprotect.find(vm.name()); it != last_reprotect.end()) {
      return DescribeVm(vm, it->second);
    }
    return DescribeVm(vm);
  }

  ManagedVm* Find(const std::string& name) const {
    for (const auto& vm : vms) {
      if (vm->name() == name) return vm.get();
    }
    return nullptr;
  }

  // ---- responses
  std::string Reply(ControlResponse r) {
    r.set_node(node.name);
    return r.SerializeAsString();
  }
  std::string Error(ControlResponse::Code code, const std::string& message) {
    ControlResponse r;
    r.set_code(code);
    r.set_error(message);
    return Reply(std::move(r));
  }
  std::string Peer(PeerResponse r) {
    r.set_node(node.name);
    return r.SerializeAsString();
  }
  std::string PeerError(PeerResponse::Code code, const std::string& message) {
    PeerResponse r;
    r.set_code(code);
    r.set_error(message);
    return Peer(std::move(r));
  }

  // The peer's answer, or why there is none: kUnavailable/kTimeout, or kDataLoss for an
  // answer that does not parse.
  Result<PeerResponse> ParsePeerAnswer(Result<std::string> r) const {
    PeerResponse response;
    FT_RETURN_IF_ERROR(daemon::ParsePeerAnswer(node, r, response));
    return response;
  }

  // Asks the peer one thing on its own session.
  void AskPeer(const proto::PeerRequest& request, std::chrono::milliseconds timeout,
               std::function<void(Result<PeerResponse>)> done) {
    CallPeer(io, node, request.SerializeAsString(), timeout,
             [done = std::move(done), this](Result<std::string> r) {
               done(ParsePeerAnswer(std::move(r)));
             });
  }

  // Stops `name`'s copy here and drops it from the list (posted: never from inside the VM's
  // own callbacks); `done` runs once it is gone.
  void Remove(const std::string& name, std::function<void()> done) {
    ManagedVm* vm = Find(name);
    if (!vm) return done();
    std::weak_ptr<Impl> weak = shared_from_this();
    vm->Stop([weak, name, done = std::move(done)] {
      auto self = weak.lock();
      if (!self) return done();
      asio::post(self->io, [weak, name, done] {
        if (auto me = weak.lock()) {
          auto& v = me->vms;
          v.erase(
              std::remove_if(v.begin(), v.end(), [&](const auto& m) { return m->name() == name; }),
              v.end());
        }
        done();
      });
    });
  }

  // ---- start-up
  // While copies are coming in: every minute, those whose sender went silent for 2 minutes
  // are dropped. Armed only then, so it never keeps a stopping ftd's event loop alive.
  bool sweeping = false;
  void SweepReplicas() {
    if (sweeping || stopping || !replicas.receiving()) return;
    sweeping = true;
    replica_sweep.expires_after(std::chrono::minutes(1));
    replica_sweep.async_wait([weak = weak_from_this()](const std::error_code& ec) {
      auto self = weak.lock();
      if (!self) return;
      self->sweeping = false;
      if (ec) return;
      self->replicas.DropIdle(std::chrono::minutes(2));
      self->SweepReplicas();
    });
  }

  Status StartEnabledVms() {
    EnabledVmsOnDisk enabled = LoadEnabledVms(node);
    for (const auto& damaged : enabled.damaged) {
      log->error("a VM turned on with ftctl is not started: {} (fix or remove the file)",
                 damaged.message());
    }
    for (auto& e : enabled.vms) {
      if (Find(e.spec.name)) {
        log->error(
            "vm '{}' is in {} and was also turned on with ftctl ({}); running the one "
            "in the config file",
            e.spec.name, config.source, e.source);
        continue;
      }
      e.spec.qemu_binary = node.qemu;
      auto vm = MakeManagedVm(io, node, e.spec, e.role);
      log->info("vm '{}': FT on since an earlier enable ({}), {} on this node", e.spec.name,
                e.source, FtRoleName(e.role));
      if (Status s = vm->Start(); !s.ok()) {
        log->error("vm '{}' not started: {}", e.spec.name, s.ToString());
      }
      vms.push_back(std::move(vm));
    }
    WatchUnprotected();
    return Status::Ok();
  }

  // ---- re-protection (reprotection.h): a new backup for a VM that runs unprotected here
  // `respond`, if set, answers ftctl once the attempt ended.
  void Reprotect(const std::string& name, const std::string& source,
                 ControlServer::Respond respond = nullptr) {
    if (node.channel.key.empty() || node.channel.peer_host.empty()) {
      if (respond) {
        respond(Error(ControlResponse::REFUSED,
                      fmt::format("node '{}' cannot protect VMs: set [node] peer and "
                                  "channel_key_file in {}",
                                  node.name, config.source)));
      }
      return;
    }
    busy.insert(name);
    std::weak_ptr<Impl> weak = shared_from_this();
    ReprotectHost host;
    host.io = &io;
    host.node = &node;
    host.find = [weak](const std::string& vm) -> ManagedVm* {
      auto self = weak.lock();
      return self ? self->Find(vm) : nullptr;
    };
    host.replace = [weak, name](std::unique_ptr<ManagedVm> next, std::function<void()> done) {
      auto self = weak.lock();
      if (!self) return;
      auto holder = std::make_shared<std::unique_ptr<ManagedVm>>(std::move(next));
      self->Remove(name, [weak, holder, done] {
        if (auto me = weak.lock(); me && *holder) me->vms.push_back(std::move(*holder));
        done();
      });
    };
    host.stopping = [weak] {
      auto self = weak.lock();
      return !self || self->stopping;
    };
    host.ask_peer = [weak](const proto::PeerRequest& request, std::chrono::milliseconds timeout,
                           std::function<void(Result<PeerResponse>)> done) {
      if (auto self = weak.lock()) self->AskPeer(request, timeout, std::move(done));
    };
    auto attempt = Reprotection::Start(
        std::move(host), name, source,
        [weak, name, source, respond = std::move(respond)](Status outcome) {
          auto self = weak.lock();
          if (!self) return;
          self->busy.erase(name);
          if (auto it = self->reprotecting.find(name); it != self->reprotecting.end()) {
            self->last_reprotect[name] = it->second->report();
            // Not from inside its own callback: the attempt is dropped once this returns.
            asio::post(self->io, [keep = it->second] {});
            self->reprotecting.erase(it);
          }
          auto& retry = self->reprotect_retry[name];
          if (outcome.ok()) {
            retry = Retry{};
            self->RecordProtected(name, source);
          } else {
            retry.not_before = Clock::now() + retry.wait;
            retry.wait = std::min<Clock::duration>(retry.wait * 2, kReprotectRetryMax);
          }
          if (!respond) return;
          ManagedVm* vm = self->Find(name);
          if (!outcome.ok()) {
            return respond(self->Error(
                outcome.code() == StatusCode::kUnavailable || outcome.code() == StatusCode::kTimeout
                    ? ControlResponse::PEER_UNREACHABLE
                    : ControlResponse::REFUSED,
                fmt::format("vm '{}' was not re-protected: {}{}", name, outcome.message(),
                            vm ? fmt::format("; it runs on ({})", RoleAndState(*vm)) : "")));
          }
          ControlResponse ok;
          if (vm) *ok.add_vms() = self->Describe(*vm);
          respond(self->Reply(std::move(ok)));
        });
    // An attempt that ended at once (its VM gone) has told its callback already.
    if (!attempt->finished()) reprotecting[name] = std::move(attempt);
  }

  // A VM turned on at run time stays a primary here across restarts; one in the config file
  // keeps its role from there.
  void RecordProtected(const std::string& name, const std::string& source) {
    ManagedVm* vm = Find(name);
    if (!vm) return;
    for (const auto& v : config.vms) {
      if (v.name == name) return;
    }
    if (Status s = SaveEnabledVm(node, {vm->spec(), FtRole::kPrimary, source}); !s.ok()) {
      log->error("vm '{}': {}", name, s.ToString());
    }
  }

  // reprotect = auto: every VM that runs unprotected here is re-protected, one at a time,
  // with a growing wait after a failed attempt (a peer that is down costs one call).
  void WatchUnprotected() {
    if (stopping || !node.reprotect_auto || node.channel.peer_host.empty() ||
        node.channel.key.empty()) {
      return;
    }
    reprotect_timer.expires_after(kReprotectPoll);
    reprotect_timer.async_wait([weak = weak_from_this()](const std::error_code& ec) {
      auto self = weak.lock();
      if (!self || ec || self->stopping) return;
      if (self->reprotecting.empty()) {
        for (const auto& vm : self->vms) {
          VmReport r = vm->Report();
          if (r.role != FtRole::kPrimary || r.ft_state != VmFtState::kUnprotected ||
              r.state != VmState::kRunning) {
            continue;
          }
          if (self->busy.count(vm->name())) continue;
          auto& retry = self->reprotect_retry[vm->name()];
          if (Clock::now() < retry.not_before) continue;
          self->Reprotect(vm->name(), "automatic re-protection");
          break;
        }
      }
      self->WatchUnprotected();
    });
  }

  // ---- ftctl
  void HandleControl(const std::string& payload, ControlServer::Respond respond) {
    proto::ControlRequest request;
    if (!request.ParseFromString(payload)) {
      return respond(
          Error(ControlResponse::BAD_REQUEST, "request is not a valid ControlRequest message"));
    }
    if (request.version() != kControlVersion) {
      return respond(Error(ControlResponse::BAD_REQUEST,
                           fmt::format("control protocol version {} is not supported (ftd speaks "
                                       "{}); use the ftctl of the same release",
                                       request.version(), kControlVersion)));
    }
    // Every name in the request follows the one rule before anything looks it up or builds
    // a path from it (proto/ft/proto/field_rules.proto).
    if (Status s = proto::CheckFieldRules(request); !s.ok()) {
      log->warn("control request refused: {}", s.message());
      return respond(Error(ControlResponse::BAD_REQUEST, s.message()));
    }
    switch (request.command_case()) {
      case proto::ControlRequest::kList: {
        ControlResponse r;
        for (const auto& vm : vms) *r.add_vms() = Describe(*vm);
        return respond(Reply(std::move(r)));
      }
      case proto::ControlRequest::kStatus: {
        ManagedVm* vm = Find(request.status().vm());
        if (!vm) return respond(UnknownVm(request.status().vm()));
        ControlResponse r;
        *r.add_vms() = Describe(*vm);
        return respond(Reply(std::move(r)));
      }
      case proto::ControlRequest::kEnable:
        return Enable(request.enable(), std::move(respond));
      case proto::ControlRequest::kDisable:
        return Disable(request.disable(), std::move(respond));
      case proto::ControlRequest::kFailover:
        return Switchover(request.failover().vm(), SwitchoverKind::kFailover, kDefaultLiveTimeout,
                          std::move(respond));
      case proto::ControlRequest::kDrill: {
        auto timeout = request.drill().timeout_ms()
                           ? std::chrono::milliseconds(request.drill().timeout_ms())
                           : std::chrono::milliseconds(kDefaultLiveTimeout);
        return Switchover(request.drill().vm(), SwitchoverKind::kDrill, timeout,
                          std::move(respond));
      }
      case proto::ControlRequest::COMMAND_NOT_SET:
        break;
    }
    respond(Error(ControlResponse::BAD_REQUEST, "request names no command this ftd knows"));
  }

  std::string UnknownVm(const std::string& name) {
    return Error(ControlResponse::UNKNOWN_VM,
                 fmt::format("no VM named '{}' on node '{}'", name, node.name));
  }

  // Refused before anything changes, or nullopt when the VM may be operated on.
  std::optional<std::string> Busy(const std::string& name) {
    if (!busy.count(name)) return std::nullopt;
    return Error(ControlResponse::REFUSED,
                 fmt::format("vm '{}': another operation on it is in progress", name));
  }

  // enable: check here, have the peer start the backup, then start the primary here.
  void Enable(const proto::EnableRequest& request, ControlServer::Respond respond) {
    std::string source = request.source().empty() ? "ftctl enable" : request.source();
    if (request.vm_config().empty() && !request.vm().empty()) {
      ManagedVm* vm = Find(request.vm());
      if (!vm) return respond(UnknownVm(request.vm()));
      VmReport report = vm->Report();
      if (vm->role() == FtRole::kOff ||
          (report.role != FtRole::kOff && report.ft_state != VmFtState::kUnprotected)) {
        return respond(Error(ControlResponse::ALREADY_ENABLED,
                             fmt::format("vm '{}' is already on node '{}' ({}): FT is already "
                                         "on for it, or it is not one ftd records; only a VM that "
                                         "runs unprotected under FT gets a backup without a "
                                         "restart",
                                         request.vm(), node.name, RoleAndState(*vm))));
      }
      if (auto busy_reply = Busy(request.vm())) return respond(*busy_reply);
      return Reprotect(request.vm(), source, std::move(respond));
    }
    auto parsed = ParseVmSection(request.vm_config(), source);
    if (!parsed.ok())
      return respond(Error(ControlResponse::BAD_REQUEST, parsed.status().message()));
    domain::VmSpec spec = std::move(parsed).value();
    spec.qemu_binary = node.qemu;
    if (ManagedVm* vm = Find(spec.name)) {
      VmReport report = vm->Report();
      if (vm->role() != FtRole::kOff &&
          (report.role == FtRole::kOff || report.ft_state == VmFtState::kUnprotected)) {
        if (auto busy_reply = Busy(spec.name)) return respond(*busy_reply);
        // It runs here without a backup: give it one without restarting it.
        return Reprotect(spec.name, source, std::move(respond));
      }
      return respond(Error(ControlResponse::ALREADY_ENABLED,
                           fmt::format("vm '{}' is already on node '{}' ({}): FT is already on "
                                       "for it, or it runs here unprotected",
                                       spec.name, node.name, RoleAndState(*vm))));
    }
    if (auto busy_reply = Busy(spec.name)) return respond(*busy_reply);
    if (node.channel.key.empty() || node.channel.peer_host.empty()) {
      return respond(Error(ControlResponse::REFUSED,
                           fmt::format("node '{}' cannot protect VMs: set [node] peer and "
                                       "channel_key_file in {}",
                                       node.name, config.source)));
    }
    if (Status s = CheckVmFiles(spec); !s.ok()) {
      return respond(Error(ControlResponse::BAD_REQUEST, s.message()));
    }
    for (const auto& d : spec.disks) {
      if (d.format != "qcow2") {
        return respond(Error(
            ControlResponse::REFUSED,
            fmt::format("vm '{}': disk.{} '{}' is {}: a protected VM's disks must be qcow2 (the "
                        "snapshot a backup goes live from lives in them); convert it with "
                        "qemu-img convert -O qcow2",
                        spec.name, d.id, d.path, d.format)));
      }
    }
    Result<uint64_t> stored = StoredEpoch(node, spec.name);
    if (!stored.ok()) {
      return respond(Error(ControlResponse::REFUSED,
                           fmt::format("vm '{}': {}; fix or remove it (epochs only grow: it "
                                       "must not go below the pair's last one)",
                                       spec.name, stored.status().message())));
    }
    proto::PeerRequest ask;
    ask.mutable_protect()->set_vm_config(FormatVmSection(spec));
    ask.mutable_protect()->set_epoch(*stored + 1);
    ask.mutable_protect()->set_source(source);
    busy.insert(spec.name);
    log->info(
        "vm '{}': enabling FT ({}): copying {} disk(s) to the peer at {}:{} and asking it "
        "to run the backup",
        spec.name, source, spec.disks.size(), node.channel.peer_host, node.channel.peer_port);
    std::weak_ptr<Impl> weak = shared_from_this();
    auto finish = [weak, spec, source, respond = std::move(respond)](Result<PeerResponse> r) {
      auto self = weak.lock();
      if (!self) return;
      self->busy.erase(spec.name);
      self->EnableWithBackup(spec, source, std::move(r), respond);
    };
    PeerConversation::Open(
        io, node, kPeerCallTimeout,
        [weak, spec, ask, finish](Result<std::shared_ptr<PeerConversation>> opened) {
          auto self = weak.lock();
          if (!self) return;
          if (!opened.ok()) return finish(opened.status());
          auto conversation = std::move(opened).value();
          SendReplicas(self->io, conversation, self->node, spec,
                       [weak, conversation, spec, ask, finish](Status sent) {
                         auto me = weak.lock();
                         if (!me) return;
                         if (!sent.ok()) {
                           conversation->Close();
                           // A refusal cleaned up after itself on the peer; a lost conversation may
                           // not.
                           if (sent.code() == StatusCode::kUnavailable ||
                               sent.code() == StatusCode::kTimeout) {
                             me->UndoPeerBackup(spec.name, "creating the disk replicas failed");
                           }
                           return finish(sent);
                         }
                         conversation->Ask(ask.SerializeAsString(), kPeerCallTimeout,
                                           [weak, conversation, finish](Result<std::string> r) {
                                             conversation->Close();
                                             if (auto me2 = weak.lock())
                                               finish(me2->ParsePeerAnswer(std::move(r)));
                                           });
                       });
        });
  }

  // Tells the peer to drop what it has of `name` (its backup, its replicas).
  void UndoPeerBackup(const std::string& name, const std::string& why) {
    proto::PeerRequest undo;
    undo.mutable_unprotect()->set_vm(name);
    undo.mutable_unprotect()->set_why(why);
    AskPeer(undo, kPeerCallTimeout, [](Result<PeerResponse>) {});
  }

  void EnableWithBackup(const domain::VmSpec& spec, const std::string& source,
                        Result<PeerResponse> r, const ControlServer::Respond& respond) {
    if (!r.ok()) {
      bool unreachable = r.status().code() == StatusCode::kUnavailable ||
                         r.status().code() == StatusCode::kTimeout;
      // The answer was lost, not refused: the peer may have started the backup (or kept a
      // partial replica) meanwhile. Take it back.
      if (unreachable) UndoPeerBackup(spec.name, "enabling failed: " + r.status().message());
      return respond(
          Error(unreachable ? ControlResponse::PEER_UNREACHABLE : ControlResponse::REFUSED,
                fmt::format("{}; FT was not turned on for '{}'", r.status().message(), spec.name)));
    }
    if (r->code() != PeerResponse::OK) {
      return respond(Error(ControlResponse::REFUSED,
                           fmt::format("peer '{}' refused to run the backup of '{}': {}", r->node(),
                                       spec.name, r->error())));
    }
    if (stopping) {
      UndoPeerBackup(spec.name, "ftd on the primary's host is stopping");
      return respond(Error(ControlResponse::REFUSED,
                           fmt::format("ftd on node '{}' is stopping; FT was not turned on for "
                                       "'{}'",
                                       node.name, spec.name)));
    }
    if (Find(spec.name)) {
      UndoPeerBackup(spec.name, "the VM appeared on the primary's host meanwhile");
      return respond(
          Error(ControlResponse::ALREADY_ENABLED,
                fmt::format("vm '{}' appeared on node '{}' meanwhile", spec.name, node.name)));
    }
    // The epoch and enabled.conf are fsynced with their directory: on a disk busy with the
    // peer's replica or a guest's writes that takes hundreds of ms, so off the event loop.
    busy.insert(spec.name);
    std::weak_ptr<Impl> weak = shared_from_this();
    record_writes[spec.name] = RunInBackground<Status>(
        io,
        [node = node, record = EnabledVm{spec, FtRole::kPrimary, source}, epoch = r->epoch()] {
          Status s = SaveEpoch(node, record.spec.name, epoch);
          if (s.ok()) s = SaveEnabledVm(node, record);
          return s;
        },
        [weak, spec, peer = r->node(), epoch = r->epoch(), respond](Status saved) {
          auto self = weak.lock();
          if (!self) return;
          self->record_writes.erase(spec.name);
          self->busy.erase(spec.name);
          self->StartEnabledPrimary(spec, peer, epoch, saved, respond);
        });
  }

  // The records of an enable are saved (or failed to be): the primary starts.
  void StartEnabledPrimary(const domain::VmSpec& spec, const std::string& peer, uint64_t epoch,
                           Status saved, const ControlServer::Respond& respond) {
    if (saved.ok() && stopping) {
      saved = Aborted(fmt::format("ftd on node '{}' is stopping", node.name));
    }
    std::unique_ptr<ManagedVm> vm;
    if (saved.ok()) {
      vm = MakeManagedVm(io, node, spec, FtRole::kPrimary);
      saved = vm->Start();
    }
    if (!saved.ok()) {
      log->error("vm '{}': enabling failed here, turning the peer's backup off again: {}",
                 spec.name, saved.ToString());
      (void)ForgetEnabledVm(node, spec.name);
      UndoPeerBackup(spec.name, "enabling failed on the primary's host");
      return respond(Error(
          ControlResponse::INTERNAL,
          fmt::format("vm '{}' could not start as the primary: {}", spec.name, saved.message())));
    }
    log->info("vm '{}': FT on: primary here, backup on '{}', epoch {}", spec.name, peer, epoch);
    ControlResponse ok;
    *ok.add_vms() = Describe(*vm);
    vms.push_back(std::move(vm));
    respond(Reply(std::move(ok)));
  }

  // disable: the peer stops its copy first, then this one runs on unprotected.
  void Disable(const proto::DisableRequest& request, ControlServer::Respond respond) {
    const std::string name = request.vm();
    ManagedVm* vm = Find(name);
    if (!vm) return respond(UnknownVm(name));
    if (auto busy_reply = Busy(name)) return respond(*busy_reply);
    VmReport report = vm->Report();
    if (vm->role() == FtRole::kOff || report.role == FtRole::kOff) {
      return respond(Error(ControlResponse::REFUSED,
                           fmt::format("FT is not on for '{}' on node '{}'", name, node.name)));
    }
    if (report.ft_state == VmFtState::kHalted || report.ft_state == VmFtState::kStale) {
      // This copy stopped for good, or never ran (the other host's went live): nothing to ask
      // the peer, whose copy is not this one's backup.
      return DisableHere(name, "", respond);
    }
    if (report.ft_state == VmFtState::kArbitrating) {
      return respond(Error(ControlResponse::REFUSED,
                           fmt::format("vm '{}' is arbitrating on node '{}' (its backup was "
                                       "lost and the claim is not decided): turn FT off once "
                                       "it has settled",
                                       name, node.name)));
    }
    if (report.role == FtRole::kBackup) {
      return respond(Error(ControlResponse::REFUSED,
                           fmt::format("vm '{}' is the backup on node '{}': turn FT off on the "
                                       "primary's host ('{}')",
                                       name, node.name, report.peer)));
    }
    proto::PeerRequest ask;
    ask.mutable_unprotect()->set_vm(name);
    ask.mutable_unprotect()->set_why(fmt::format("FT turned off on '{}'", node.name));
    busy.insert(name);
    std::weak_ptr<Impl> weak = shared_from_this();
    AskPeer(ask, kPeerCallTimeout,
            [weak, name, force = request.force(),
             respond = std::move(respond)](Result<PeerResponse> r) {
              auto self = weak.lock();
              if (!self) return;
              self->busy.erase(name);
              std::string peer_note;
              if (!r.ok()) {
                if (!force) {
                  return respond(self->Error(
                      ControlResponse::PEER_UNREACHABLE,
                      fmt::format("{}; nothing changed. 'ftctl disable --force {}' turns FT off "
                                  "here anyway (then turn it off on the peer too)",
                                  r.status().message(), name)));
                }
                peer_note = fmt::format(" (the peer was not told: {})", r.status().message());
              } else if (r->code() == PeerResponse::REFUSED) {
                return respond(
                    self->Error(ControlResponse::REFUSED,
                                fmt::format("peer '{}' refused: {}", r->node(), r->error())));
              }
              self->DisableHere(name, peer_note, respond);
            });
  }

  // The peer's copy is gone (or --force): this copy runs on unprotected, or a halted one goes.
  void DisableHere(const std::string& name, const std::string& peer_note,
                   const ControlServer::Respond& respond) {
    ManagedVm* vm = Find(name);
    if (!vm) return respond(UnknownVm(name));
    (void)ForgetEnabledVm(node, name);
    if (VmFtState state = vm->Report().ft_state;
        state == VmFtState::kHalted || state == VmFtState::kStale) {
      // Nothing to run on: the copy stopped for good or never ran (a failover went the other
      // way, or this host returned after one).
      std::weak_ptr<Impl> weak = shared_from_this();
      return Remove(name, [weak, name, state, respond] {
        auto self = weak.lock();
        if (!self) return;
        self->log->info("vm '{}': FT off; the {} copy here is removed", name, VmFtStateName(state));
        respond(self->Reply(ControlResponse()));
      });
    }
    std::string why = "FT turned off by the operator (ftctl disable)" + peer_note;
    // The VM's authority decides when this copy may run alone: once it has won the next
    // epoch (at once when the peer's copy is gone; a partitioned peer may be claiming it too).
    if (Status s = vm->TurnFtOff(why); !s.ok()) {
      return respond(Error(ControlResponse::REFUSED, s.message()));
    }
    log->info("vm '{}': FT off{}; it runs on unprotected once it holds the next epoch", name,
              peer_note);
    ControlResponse ok;
    *ok.add_vms() = Describe(*vm);
    respond(Reply(std::move(ok)));
  }

  // failover (planned) and drill: this copy stops, the peer's goes live; the answer is the
  // measured switchover.
  void Switchover(const std::string& name, SwitchoverKind kind,
                  std::chrono::milliseconds live_timeout, ControlServer::Respond respond) {
    ManagedVm* vm = Find(name);
    if (!vm) return respond(UnknownVm(name));
    if (auto busy_reply = Busy(name)) return respond(*busy_reply);
    VmReport report = vm->Report();
    if (report.role != FtRole::kPrimary || report.ft_state != VmFtState::kProtected) {
      return respond(Error(
          ControlResponse::REFUSED,
          fmt::format("vm '{}' is {}, {} on node '{}': a {} needs the protected primary{}", name,
                      FtRoleName(report.role), VmFtStateName(report.ft_state), node.name,
                      SwitchoverKindName(kind),
                      report.role == FtRole::kBackup ? fmt::format(" (run it on '{}')", report.peer)
                                                     : "")));
    }
    if (!report.failover) {
      return respond(Error(ControlResponse::REFUSED,
                           fmt::format("vm '{}': failover is off on node '{}' (no [node] "
                                       "shared_storage): the backup could not go live",
                                       name, node.name)));
    }
    auto started = Clock::now();
    auto out = std::make_shared<proto::SwitchoverReport>();
    out->set_vm(name);
    out->set_kind(static_cast<proto::SwitchoverKind>(kind));
    out->set_from_node(node.name);
    out->set_to_node(report.peer);
    out->set_log_bytes(report.acked_bytes);
    busy.insert(name);
    std::weak_ptr<Impl> weak = shared_from_this();
    auto finish = [weak, name, respond](std::string reply) {
      if (auto self = weak.lock()) self->busy.erase(name);
      respond(std::move(reply));
    };
    if (kind == SwitchoverKind::kDrill) {
      if (Status s = vm->PlayDead(); !s.ok()) {
        return finish(Error(ControlResponse::REFUSED, s.message()));
      }
      out->set_stopped_ms(MsSinceStart(started));
      (void)ForgetEnabledVm(node, name);
      return WaitForPeerLive(name, started, Clock::now() + live_timeout, out, finish);
    }
    vm->DrainForHandover(kDrainTimeout, [weak, name, started, live_timeout, out,
                                         finish](Result<uint64_t> end) {
      auto self = weak.lock();
      if (!self) return;
      if (!end.ok()) {
        return finish(self->Error(
            ControlResponse::REFUSED,
            fmt::format("{}; '{}' runs on here as before", end.status().message(), name)));
      }
      out->set_stopped_ms(MsSinceStart(started));
      out->set_drained_ms(MsSinceStart(started));
      out->set_log_bytes(*end);
      proto::PeerRequest ask;
      ask.mutable_handover()->set_vm(name);
      ask.mutable_handover()->set_log_end(*end);
      self->AskPeer(ask, kPeerCallTimeout,
                    [weak, name, started, live_timeout, out, finish](Result<PeerResponse> r) {
                      auto me = weak.lock();
                      if (!me) return;
                      ManagedVm* primary = me->Find(name);
                      if (!primary) return finish(me->UnknownVm(name));
                      if (!r.ok() || r->code() != PeerResponse::OK) {
                        std::string why =
                            r.ok() ? fmt::format("peer '{}' refused: {}", r->node(), r->error())
                                   : r.status().message();
                        primary->AbortHandover(why);
                        return finish(me->Error(
                            r.ok() ? ControlResponse::REFUSED : ControlResponse::PEER_UNREACHABLE,
                            fmt::format("{}; '{}' runs on here as before", why, name)));
                      }
                      if (Status s = primary->CompleteHandover(r->node()); !s.ok()) {
                        return finish(me->Error(ControlResponse::INTERNAL, s.message()));
                      }
                      (void)ForgetEnabledVm(me->node, name);
                      me->WaitForPeerLive(name, started, Clock::now() + live_timeout, out, finish);
                    });
    });
  }

  // Polls the peer until its copy reports live (or the deadline), then answers with the report.
  void WaitForPeerLive(const std::string& name, Clock::time_point started,
                       Clock::time_point deadline, std::shared_ptr<proto::SwitchoverReport> out,
                       std::function<void(std::string)> finish) {
    proto::PeerRequest ask;
    ask.mutable_status()->set_vm(name);
    std::weak_ptr<Impl> weak = shared_from_this();
    AskPeer(ask, 2s, [weak, name, started, deadline, out, finish](Result<PeerResponse> r) {
      auto self = weak.lock();
      if (!self) return;
      if (r.ok() && r->code() == PeerResponse::OK && r->vm().failover().live_ns() != 0) {
        out->set_live_ms(MsSinceStart(started));
        out->set_to_node(r->node());
        out->set_epoch(r->vm().epoch());
        *out->mutable_peer_steps() = r->vm().failover();
        out->set_protection_restored(false);
        out->set_protection_note(fmt::format(
            "not restored yet: '{}' runs unprotected on '{}' in epoch {}; {}", name, r->node(),
            r->vm().epoch(),
            self->node.reprotect_auto
                ? "with reprotect = auto there a new backup follows by itself (ftctl status "
                  "there shows the re-protection)"
                : "'ftctl enable " + name + "' there gives it a new backup without a restart"));
        self->log->warn("vm '{}': {}: '{}' live {:.0f} ms after this copy stopped", name,
                        SwitchoverKindName(out->kind()), r->node(), out->live_ms());
        ControlResponse ok;
        *ok.mutable_switchover() = *out;
        return finish(self->Reply(std::move(ok)));
      }
      if (Clock::now() >= deadline) {
        std::string last = r.ok()
                               ? fmt::format("its state: {}, {} ({})", FtRoleName(r->vm().role()),
                                             VmFtStateName(r->vm().ft_state()), r->vm().ft_note())
                               : r.status().message();
        return finish(self->Error(
            ControlResponse::INTERNAL,
            fmt::format("vm '{}': this copy stopped ({}), but the peer did not report its copy "
                        "live in time; {}",
                        name, SwitchoverKindName(out->kind()), last)));
      }
      auto timer = std::make_shared<asio::steady_timer>(self->io, kPeerLivePoll);
      timer->async_wait(
          [weak, timer, name, started, deadline, out, finish](const std::error_code&) {
            if (auto me = weak.lock()) me->WaitForPeerLive(name, started, deadline, out, finish);
          });
    });
  }

  // ---- the peer ftd
  void HandlePeer(const std::string& payload, std::function<void(std::string)> respond) {
    proto::PeerRequest request;
    if (!request.ParseFromString(payload)) {
      return respond(PeerError(PeerResponse::BAD_REQUEST, "not a PeerRequest message"));
    }
    if (Status s = proto::CheckFieldRules(request); !s.ok()) {
      log->warn("peer request refused: {}", s.message());
      return respond(PeerError(PeerResponse::BAD_REQUEST,
                               fmt::format("on node '{}': {}", node.name, s.message())));
    }
    switch (request.command_case()) {
      case proto::PeerRequest::kProtect:
        if (!request.protect().from_snapshot().empty()) {
          return ProtectFromSnapshot(request.protect(), std::move(respond));
        }
        return Protect(request.protect(), std::move(respond));
      case proto::PeerRequest::kUnprotect:
        return Unprotect(request.unprotect(), std::move(respond));
      case proto::PeerRequest::kHandover: {
        ManagedVm* vm = Find(request.handover().vm());
        if (!vm) {
          return respond(PeerError(
              PeerResponse::UNKNOWN_VM,
              fmt::format("no VM named '{}' on node '{}'", request.handover().vm(), node.name)));
        }
        Status s = vm->AcceptHandover(request.handover().log_end());
        if (!s.ok()) return respond(PeerError(PeerResponse::REFUSED, s.message()));
        return respond(Peer(PeerResponse()));
      }
      case proto::PeerRequest::kStatus: {
        ManagedVm* vm = Find(request.status().vm());
        if (!vm) {
          return respond(PeerError(
              PeerResponse::UNKNOWN_VM,
              fmt::format("no VM named '{}' on node '{}'", request.status().vm(), node.name)));
        }
        PeerResponse r;
        *r.mutable_vm() = Describe(*vm);
        return respond(Peer(std::move(r)));
      }
      case proto::PeerRequest::kReplicaBegin: {
        // Never write over the disks of a copy that runs here (e.g. the VM went live here
        // and the other host is enabling it again from its stale image).
        const std::string& vm = request.replica_begin().vm();
        if (ManagedVm* existing = Find(vm)) {
          return respond(PeerError(PeerResponse::REFUSED,
                                   fmt::format("vm '{}' already exists on node '{}' ({}); its "
                                               "disks are not replaced",
                                               vm, node.name, RoleAndState(*existing))));
        }
        if (busy.count(vm)) {
          return respond(PeerError(PeerResponse::REFUSED,
                                   fmt::format("vm '{}': an operation on it is in progress on "
                                               "node '{}'",
                                               vm, node.name)));
        }
        replicas.Begin(request.replica_begin(), AnswerReplica(std::move(respond)));
        SweepReplicas();
        return;
      }
      // Answered once the chunk is written (on a worker): the sender waits for each answer.
      case proto::PeerRequest::kReplicaChunk:
        return replicas.Chunk(request.replica_chunk(), AnswerReplica(std::move(respond)));
      case proto::PeerRequest::kReplicaEnd:
        return replicas.End(request.replica_end(), AnswerReplica(std::move(respond)));
      case proto::PeerRequest::COMMAND_NOT_SET:
        break;
    }
    respond(PeerError(PeerResponse::BAD_REQUEST, "the request names no command this ftd knows"));
  }

  std::function<void(Status)> AnswerReplica(std::function<void(std::string)> respond) {
    return [this, respond = std::move(respond)](const Status& s) {
      if (s.ok()) return respond(Peer(PeerResponse()));
      respond(PeerError(PeerResponse::REFUSED,
                        fmt::format("on node '{}': {}", node.name, s.message())));
    };
  }

  // Removes `vm`'s replicas (a worker's job, replica_transfer.h), then sends `answer`.
  void ForgetReplicasThenRespond(const std::string& vm, std::function<void(std::string)> respond,
                                 std::string answer) {
    replicas.Forget(
        vm, [respond = std::move(respond), answer = std::move(answer)] { respond(answer); });
  }

  // Answers once the replicas of a refused VM are gone (removing them is a worker's job).
  void Protect(const proto::ProtectRequest& request, std::function<void(std::string)> respond) {
    std::string forget;
    std::string answer = StartBackup(request, forget);
    if (forget.empty()) return respond(answer);
    ForgetReplicasThenRespond(forget, std::move(respond), std::move(answer));
  }

  // The backup for the peer's enable; `forget` names the VM whose replicas must go.
  std::string StartBackup(const proto::ProtectRequest& request, std::string& forget) {
    auto parsed = ParseVmSection(request.vm_config(), "the peer's protect request");
    if (!parsed.ok()) return PeerError(PeerResponse::BAD_REQUEST, parsed.status().message());
    if (stopping) {
      forget = parsed->name;
      return PeerError(PeerResponse::REFUSED,
                       fmt::format("ftd on node '{}' is stopping", node.name));
    }
    domain::VmSpec spec = std::move(parsed).value();
    spec.qemu_binary = node.qemu;
    if (ManagedVm* vm = Find(spec.name)) {
      return PeerError(PeerResponse::REFUSED,
                       fmt::format("vm '{}' already exists on node '{}' ({})", spec.name, node.name,
                                   RoleAndState(*vm)));
    }
    if (busy.count(spec.name)) {
      return PeerError(PeerResponse::REFUSED,
                       fmt::format("vm '{}': an operation on it is in progress on node '{}'",
                                   spec.name, node.name));
    }
    if (node.channel.listen_host.empty()) {
      forget = spec.name;
      return PeerError(
          PeerResponse::REFUSED,
          fmt::format("node '{}' has no [node] listen: it cannot run backups", node.name));
    }
    // This host's disks are the replicas the primary's host just sent.
    for (auto& d : spec.disks) {
      d.path = ReplicaPath(node, spec.name, d.id);
      if (!fs::exists(d.path)) {
        forget = spec.name;
        return PeerError(PeerResponse::REFUSED,
                         fmt::format("on node '{}': no replica of disk.{} of '{}' was received",
                                     node.name, d.id, spec.name));
      }
    }
    if (Status s = CheckVmFiles(spec); !s.ok()) {
      forget = spec.name;
      return PeerError(PeerResponse::REFUSED,
                       fmt::format("on node '{}': {}", node.name, s.message()));
    }
    Result<uint64_t> stored = StoredEpoch(node, spec.name);
    if (!stored.ok()) {
      forget = spec.name;
      return PeerError(PeerResponse::REFUSED,
                       fmt::format("on node '{}': {}", node.name, stored.status().message()));
    }
    uint64_t epoch = std::max<uint64_t>(request.epoch(), *stored + 1);
    Status saved = SaveEpoch(node, spec.name, epoch);
    if (saved.ok()) saved = SaveEnabledVm(node, {spec, FtRole::kBackup, request.source()});
    std::unique_ptr<ManagedVm> vm;
    if (saved.ok()) {
      vm = MakeManagedVm(io, node, spec, FtRole::kBackup);
      saved = vm->Start();
    }
    if (!saved.ok()) {
      (void)ForgetEnabledVm(node, spec.name);
      forget = spec.name;
      return PeerError(PeerResponse::REFUSED,
                       fmt::format("on node '{}': the backup of '{}' could not start: {}",
                                   node.name, spec.name, saved.message()));
    }
    log->info("vm '{}': backup started for the peer's enable ({}), epoch {}", spec.name,
              request.source(), epoch);
    vms.push_back(std::move(vm));
    PeerResponse ok;
    ok.set_epoch(epoch);
    return Peer(std::move(ok));
  }

  // Re-protection, the backup's side (reprotection.h): the VM runs on the peer; the replicas
  // and the VM-state drive it sent hold its starting point. Checked and put in place off the
  // event loop (hashing, qemu-img), then the backup starts from that point.
  void ProtectFromSnapshot(const proto::ProtectRequest& request,
                           std::function<void(std::string)> respond) {
    auto parsed = ParseVmSection(request.vm_config(), "the peer's protect request");
    if (!parsed.ok()) {
      return respond(PeerError(PeerResponse::BAD_REQUEST, parsed.status().message()));
    }
    domain::VmSpec spec = std::move(parsed).value();
    spec.qemu_binary = node.qemu;
    const std::string name = spec.name;
    auto refuse = [&](const std::string& why) {
      ForgetReplicasThenRespond(
          name, respond,
          PeerError(PeerResponse::REFUSED, fmt::format("on node '{}': {}", node.name, why)));
    };
    // Never touch the files of a copy that runs here.
    if (ManagedVm* vm = Find(name)) {
      return respond(
          PeerError(PeerResponse::REFUSED, fmt::format("vm '{}' already exists on node '{}' ({})",
                                                       name, node.name, RoleAndState(*vm))));
    }
    if (request.from_snapshot() != replay::kBaseSnapshot) {
      return refuse(fmt::format("unknown starting point '{}' (this ftd starts backups from '{}')",
                                request.from_snapshot(), replay::kBaseSnapshot));
    }
    if (stopping) return refuse("ftd is stopping");
    if (busy.count(name)) {
      return respond(PeerError(PeerResponse::REFUSED,
                               fmt::format("vm '{}': an operation on it is in progress on node "
                                           "'{}'",
                                           name, node.name)));
    }
    if (node.channel.listen_host.empty()) return refuse("no [node] listen: it cannot run backups");
    for (auto& d : spec.disks) {
      d.path = ReplicaPath(node, name, d.id);
      if (!fs::exists(d.path)) {
        return refuse(fmt::format("no replica of disk.{} of '{}' was received", d.id, name));
      }
    }
    std::string received_drive = ReplicaPath(node, name, "ft-vmstate");
    if (!fs::exists(received_drive)) {
      return refuse(fmt::format("the VM-state drive of '{}' was not received", name));
    }
    if (Status s = CheckVmFiles(spec); !s.ok()) return refuse(s.message());
    Result<uint64_t> stored = StoredEpoch(node, name);
    if (!stored.ok()) return refuse(stored.status().message());
    if (*stored > request.epoch()) {
      return refuse(fmt::format("vm '{}' is in epoch {} here, newer than the primary's {}", name,
                                *stored, request.epoch()));
    }
    busy.insert(name);
    std::string drive = PathsFor(node, name).vm_state_drive;
    std::weak_ptr<Impl> weak = shared_from_this();
    protect_prep[name] = RunInBackground<Status>(
        io,
        [spec, received_drive, drive, digest = request.replica_digest()]() -> Status {
          // The disks as received must be what the primary sent (each file's sha256 was
          // checked as it landed); then each gets the starting point as a disk snapshot.
          FT_ASSIGN_OR_RETURN(std::string here, disk::ReplicaSetDigest(spec));
          if (here != digest) {
            return DataLoss(
                fmt::format("the received disks' digest {} differs from the "
                            "primary's {}",
                            here.substr(0, 16), digest.substr(0, 16)));
          }
          for (const auto& d : spec.disks) {
            FT_RETURN_IF_ERROR(replay::CreateDiskSnapshot(d.path, replay::kBaseSnapshot, d.path));
          }
          std::error_code ec;
          fs::create_directories(fs::path(drive).parent_path(), ec);
          fs::copy_file(received_drive, drive, fs::copy_options::overwrite_existing, ec);
          if (ec) {
            return Unavailable(fmt::format("cannot put the VM-state drive in place at '{}': {}",
                                           drive, ec.message()));
          }
          fs::remove(received_drive, ec);
          return Status::Ok();
        },
        [weak, spec, drive, request, respond = std::move(respond)](Status prepared) {
          auto self = weak.lock();
          if (!self) return;
          self->protect_prep.erase(spec.name);
          self->busy.erase(spec.name);
          respond(self->StartBackupFromSnapshot(spec, drive, request, prepared));
        });
  }

  std::string StartBackupFromSnapshot(const domain::VmSpec& spec, const std::string& drive,
                                      const proto::ProtectRequest& request, Status s) {
    const std::string& name = spec.name;
    if (Find(name)) {
      // Its files are that copy's: leave them.
      return PeerError(
          PeerResponse::REFUSED,
          fmt::format("on node '{}': vm '{}' appeared here meanwhile", node.name, name));
    }
    if (s.ok() && stopping) s = Aborted("ftd is stopping");
    if (s.ok()) s = SaveEpoch(node, name, request.epoch());
    if (s.ok()) s = SaveEnabledVm(node, {spec, FtRole::kBackup, request.source()});
    std::unique_ptr<ManagedVm> vm;
    if (s.ok()) {
      vm = MakeBackupVm(io, node, spec, BackupFromSnapshot{request.replica_digest()});
      s = vm->Start();
    }
    if (!s.ok()) {
      (void)ForgetEnabledVm(node, name);
      replicas.Forget(name);
      std::error_code ec;
      fs::remove(drive, ec);
      log->warn("vm '{}': the backup of the running VM could not start: {}", name, s.ToString());
      return PeerError(PeerResponse::REFUSED,
                       fmt::format("on node '{}': the backup of '{}' could not start: {}",
                                   node.name, name, s.message()));
    }
    log->info("vm '{}': backup started from the running primary's snapshot '{}' ({}), epoch {}",
              name, request.from_snapshot(), request.source(), request.epoch());
    vms.push_back(std::move(vm));
    PeerResponse ok;
    ok.set_epoch(request.epoch());
    return Peer(std::move(ok));
  }

  void Unprotect(const proto::UnprotectRequest& request, std::function<void(std::string)> respond) {
    const std::string name = request.vm();
    ManagedVm* vm = Find(name);
    if (!vm) {
      if (protect_prep.erase(name)) {
        // The primary gave up on a re-protection whose replicas are being checked here: the
        // check's result is dropped, and what it had put in place goes.
        busy.erase(name);
        std::error_code ec;
        fs::remove(PathsFor(node, name).vm_state_drive, ec);
      }
      // An enable that failed half way may have left some replicas.
      return ForgetReplicasThenRespond(
          name, std::move(respond),
          PeerError(PeerResponse::UNKNOWN_VM,
                    fmt::format("no VM named '{}' on node '{}'", name, node.name)));
    }
    VmReport report = vm->Report();
    if (report.role == FtRole::kBackup &&
        (report.ft_state == VmFtState::kPrimaryLost || report.ft_state == VmFtState::kGoingLive)) {
      return respond(PeerError(
          PeerResponse::REFUSED,
          fmt::format("vm '{}' on node '{}' is {}: a failover is under way; turn FT off once "
                      "it has settled",
                      name, node.name, VmFtStateName(report.ft_state))));
    }
    if (report.role != FtRole::kBackup && report.ft_state != VmFtState::kHalted &&
        report.ft_state != VmFtState::kStale) {
      // A copy that runs as a primary, or with FT off, is this host's operator's business.
      return respond(PeerError(
          PeerResponse::REFUSED,
          fmt::format("vm '{}' runs here on node '{}' ({}, {}): it is not a backup this host "
                      "can give up; turn FT off here",
                      name, node.name, FtRoleName(report.role), VmFtStateName(report.ft_state))));
    }
    log->info("vm '{}': stopping this copy ({}): {}", name, RoleAndState(*vm), request.why());
    if (report.ft_state == VmFtState::kStale || report.ft_state == VmFtState::kHalted) {
      // This copy stopped for good (a drill, a lost claim) or never ran (the store holds a
      // newer epoch), and the peer asking runs the VM in the newest epoch (it re-protects or
      // turns FT off from a running copy): its disks are newer than any this copy went live
      // from, so this host's may go (vm_records.h, went-live).
      if (Status s = ClearWentLiveRecord(node, name); !s.ok()) log->warn("{}", s.ToString());
    }
    (void)ForgetEnabledVm(node, name);
    std::weak_ptr<Impl> weak = shared_from_this();
    Remove(name, [weak, name, respond = std::move(respond)] {
      auto self = weak.lock();
      if (!self) return;
      // A backup's replicas are ftd's own copies.
      self->ForgetReplicasThenRespond(name, respond, self->Peer(PeerResponse()));
    });
  }
};

Operations::Operations(asio::io_context& io, const Config& config,
                       std::vector<std::unique_ptr<ManagedVm>>& vms)
    : impl_(std::make_shared<Impl>(io, config, vms)) {}
Operations::~Operations() = default;

Status Operations::StartEnabledVms() { return impl_->StartEnabledVms(); }
void Operations::Stop() {
  impl_->stopping = true;
  impl_->replica_sweep.cancel();
  impl_->reprotect_timer.cancel();
  impl_->protect_prep.clear();
}
ManagedVm* Operations::Find(const std::string& name) const { return impl_->Find(name); }
void Operations::HandleControl(const std::string& request, ControlServer::Respond respond) {
  impl_->HandleControl(request, std::move(respond));
}
void Operations::HandlePeer(const std::string& request, std::function<void(std::string)> respond) {
  impl_->HandlePeer(request, std::move(respond));
}

}  // namespace ft::daemon
