// The primary of a protected VM: QEMU records; the tap reads its log as it is written and
// the logging channel carries it to the backup. The primary holds every log byte until the
// backup acks it, and is paced (QEMU's vCPU waits in the flush shim) so the backup's replay
// lags at most max_lag_ms behind. When the backup is gone it runs on, unprotected.
#include <unistd.h>

#include <asio.hpp>
#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "failover.h"
#include "ft/log.h"
#include "ft/replay/qmp_client.h"
#include "ft/replay/rr_log_tap.h"
#include "ft/replay/rr_stream.h"
#include "ft/replay/savevm.h"
#include "ft/replay/vm_state_drive.h"
#include "pacing.h"
#include "ports.h"
#include "primary_protection.h"
#include "repeating_wait.h"
#include "roles.h"
#include "vm_log.h"

namespace ft::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kReconnectInterval = 500ms;
constexpr auto kTickInterval = 20ms;
// At shutdown: how long to wait for the backup to ack the log's last bytes.
constexpr auto kFinalAckWait = 5s;
// Re-protection: savevm is refused while the recorder has events queued (a frame, a disk
// completion); the vCPU runs this long to take them before the next try.
constexpr auto kSaveRetryRun = 20ms;
constexpr int kSaveAttempts = 25;

using arbiter::FtState;

// The authority's state as a primary says it ("waiting-for-backup" rather than "-peer").
const char* PrimaryStateName(FtState s) {
  return VmFtStateName(ReportedFtState(s, FtRole::kPrimary));
}

// The rr flush shim: next to the ftd binary (build tree and packages), or FTD_RR_SHIM.
Result<std::string> FindRrShim() {
  if (const char* env = getenv("FTD_RR_SHIM"); env && *env) {
    if (access(env, R_OK) == 0) return std::string(env);
    return NotFound(fmt::format("FTD_RR_SHIM names '{}', which does not exist", env));
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> candidates = {exe.parent_path() / "libftd-rrshim.so",
                                      "/usr/lib/ftd/libftd-rrshim.so"};
  for (const auto& c : candidates) {
    if (access(c.c_str(), R_OK) == 0) return c.string();
  }
  return NotFound(
      fmt::format("the record log flush shim libftd-rrshim.so is not in '{}' nor /usr/lib/ftd; "
                  "reinstall ftd",
                  exe.parent_path().string()));
}

class PrimaryVm : public ManagedVm {
 public:
  PrimaryVm(asio::io_context& io, const NodeConfig& node, const domain::VmSpec& spec,
            std::optional<LiveStart> live, std::optional<ReprotectStart> reprotect = {})
      : impl_(std::make_shared<Impl>(io, node, spec)) {
    impl_->live = std::move(live);
    impl_->reprotect = std::move(reprotect);
  }
  ~PrimaryVm() override { impl_->Shutdown(); }

  const std::string& name() const override { return impl_->spec.name; }
  const domain::VmSpec& spec() const override { return impl_->spec; }
  FtRole role() const override { return FtRole::kPrimary; }
  Status Start() override { return impl_->Start(); }
  void Stop(std::function<void()> done) override { impl_->Stop(std::move(done)); }
  void OnChildSignal() override { impl_->runner.OnChildSignal(); }
  VmReport Report() const override { return impl_->Report(); }
  Status TurnFtOff(const std::string& why) override { return impl_->TurnFtOff(why); }
  void DrainForHandover(std::chrono::milliseconds timeout,
                        std::function<void(Result<uint64_t>)> done) override {
    impl_->DrainForHandover(timeout, std::move(done));
  }
  Status CompleteHandover(const std::string& to_node) override {
    return impl_->CompleteHandover(to_node);
  }
  void AbortHandover(const std::string& why) override { impl_->AbortHandover(why); }
  Status PlayDead() override { return impl_->PlayDead(); }
  void SaveForReprotect(std::function<void(Result<ReprotectPoint>)> done) override {
    impl_->SaveForReprotect(std::move(done));
  }
  Status BeginProtection(const std::string& replica_digest) override {
    return impl_->BeginProtection(replica_digest);
  }
  void AbandonProtection(const std::string& why) override { impl_->AbandonProtection(why); }

 private:
  struct Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& io_context, const NodeConfig& node_config, const domain::VmSpec& s)
        : io(io_context),
          node(node_config),
          spec(s),
          runner(io_context, node_config, s),
          log(Logger("lockstep")),
          vlog(log, s.name, [this] { return LogPosition(); }),
          reconnect_timer(io_context),
          stop_timer(io_context),
          ticker(io_context, kTickInterval, [this] { OnTick(); }),
          record_log(*this),
          backup_link(*this),
          output_gate(*this),
          authority(*this),
          protection(PrimaryPorts{&SteadyTimeSource(), &authority, &record_log, &output_gate},
                     LimitsFrom(node_config, s), vlog) {
      protection.OnBackupLost([this](const Status& why) { OnBackupLost(why); });
    }

    asio::io_context& io;
    NodeConfig node;
    domain::VmSpec spec;
    VmRunner runner;
    std::shared_ptr<spdlog::logger> log;
    VmLog vlog;  // "vm 'web1' (epoch 3, log 1048576): " on every line about this VM
    asio::steady_timer reconnect_timer, stop_timer;
    RepeatingTimer ticker;  // every kTickInterval until Shutdown(): OnTick
    channel::Identity identity;
    std::string fifo_path, counters_path;
    std::shared_ptr<replay::RrLogTap> tap;
    std::shared_ptr<net::GuestNic> nic;  // output commit (nic = bridge)
    std::shared_ptr<channel::Session> session;
    // The authority (arbiter/): decides whether this copy may start, open its gate or must
    // halt. Null only for a copy that went live: its backup's authority decided that.
    std::shared_ptr<Failover> failover;
    std::optional<LiveStart> live;  // set: a backup that went live, running alone
    // Set: this copy continues one saved for re-protection; it connects to the new backup
    // once that runs (BeginProtection), not before.
    std::optional<ReprotectStart> reprotect;
    bool protection_begun = false;
    bool saving_for_reprotect = false;  // SaveForReprotect under way
    bool live_failed = false;           // ... whose QEMU failed
    std::string note;                   // this role's own note (start-up, connection errors)
    RateMeter rate;
    bool connecting = false, stopping = false, log_closed = false;
    bool ft_off = false;  // the operator turned FT off: this VM is no one's primary
    asio::steady_timer drain_timer{io};
    std::shared_ptr<channel::Session> silent_session;  // a drill's: closed with this copy
    Status last_connect_error;
    std::function<void()> on_stopped;

    FtState State() const {
      if (failover) return failover->state();
      return live_failed ? FtState::kHalted : FtState::kUnprotected;
    }

    // ---- the ports PrimaryProtection acts on (ports.h): this copy's tap, shim, channel,
    // NIC and authority, each of which may not exist yet (or any more).
    static PrimaryLimits LimitsFrom(const NodeConfig& node, const domain::VmSpec& spec) {
      PrimaryLimits limits;
      limits.max_unacked_bytes = uint64_t(node.channel.max_unacked_mib) << 20;
      limits.max_lag_ms = node.channel.max_lag_ms;
      limits.icount_shift = spec.icount_shift;
      return limits;
    }
    struct TapAndShim : RecordLog {
      explicit TapAndShim(Impl& i) : impl(i) {}
      uint64_t read_bytes() const override { return impl.tap ? impl.tap->offset() : 0; }
      uint64_t read_icount() const override { return impl.tap ? impl.tap->icount() : 0; }
      uint64_t recent_max_span() const override {
        return impl.tap ? impl.tap->recent_max_span() : 0;
      }
      void PauseReading() override {
        if (impl.tap) impl.tap->Pause();
      }
      void ResumeReading() override {
        if (impl.tap) impl.tap->Resume();
      }
      std::optional<uint64_t> written_bytes() override {
        auto* c = impl.Counters();
        return c ? std::optional<uint64_t>(c->produced()) : std::nullopt;
      }
      std::optional<uint64_t> written_icount() override {
        auto* c = impl.Counters();
        return c && !c->scan_failed() ? std::optional<uint64_t>(c->icount()) : std::nullopt;
      }
      void SetIcountLimit(uint64_t limit) override {
        if (auto* c = impl.Counters()) c->SetIcountLimit(limit);
      }
      bool vcpu_held() override {
        auto* c = impl.Counters();
        return c && c->held() > 0;
      }
      Impl& impl;
    };
    struct SessionLink : BackupLink {
      explicit SessionLink(Impl& i) : impl(i) {}
      void SendLog(uint64_t offset, std::string_view bytes) override {
        if (impl.session) impl.session->SendLog(offset, bytes);
      }
      void Close() override {
        if (auto s = std::move(impl.session)) s->Close();
      }
      Impl& impl;
    };
    struct NicGate : OutputGate {
      explicit NicGate(Impl& i) : impl(i) {}
      void Release(uint64_t acked) override {
        if (impl.nic) impl.nic->OnAcked(acked);
      }
      Impl& impl;
    };
    // The Failover, or for a copy that went live (its backup's authority decided) the
    // state it runs in.
    struct RoleAuthority : Authority {
      explicit RoleAuthority(Impl& i) : impl(i) {}
      FtState state() const override { return impl.State(); }
      bool on() const override { return impl.failover && impl.failover->on(); }
      void PeerConnected() override {
        if (impl.failover) impl.failover->PeerConnected();
      }
      void PeerLost(const std::string& why) override {
        if (impl.failover) impl.failover->PeerLost(why);
      }
      void CaughtUp() override {}
      void GiveUpWaiting(const std::string& why) override {
        if (impl.failover) impl.failover->GiveUpWaiting(why);
      }
      void CopyEnded(const std::string& why) override {
        if (impl.failover) impl.failover->CopyEnded(why);
      }
      void MarkReplayEnded() override {}
      void MarkSnapshotSaved() override {}
      void GoLiveDone(const Status&) override {}
      Impl& impl;
    };
    TapAndShim record_log;
    SessionLink backup_link;
    NicGate output_gate;
    RoleAuthority authority;
    PrimaryProtection protection;

    Status Start() {
      // The replicas' digest is hashed off the event loop, before QEMU may touch the disks.
      FT_ASSIGN_OR_RETURN(identity, LocalIdentity(node, spec, /*digest_replicas=*/false));
      FT_ASSIGN_OR_RETURN(shim, FindRrShim());
      if (live) return StartCopy(identity.epoch);
      std::weak_ptr<Impl> weak = shared_from_this();
      FailoverHooks hooks;
      hooks.start_copy = [weak](uint64_t epoch) {
        auto self = weak.lock();
        if (!self || self->stopping) return;
        Status s = self->StartCopy(epoch);
        if (self->starting) {
          self->start_status = s;  // failover off: decided at once, Start() reports it
        } else if (!s.ok()) {
          self->StartFailed(s);
        }
      };
      hooks.open_gate = [weak] {
        if (auto self = weak.lock()) self->GoUnprotected(self->failover->note());
      };
      hooks.halt = [weak](const std::string& why) {
        if (auto self = weak.lock()) self->Halt(why);
      };
      failover = Failover::Create(io, node, spec.name, arbiter::Role::kPrimary, identity.epoch,
                                  std::move(hooks));
      // Nothing runs until the authority has read the claim store: a copy whose epoch the
      // other host has moved past is stale and never starts.
      starting = true;
      failover->Start();
      starting = false;
      if (!start_status.ok()) failover->CopyEnded("not started: " + start_status.message());
      return start_status;
    }
    std::string shim;
    bool starting = false;  // inside Start(): a decision taken at once is returned by it
    Status start_status;

    // The authority let this copy run in `epoch`: the log tap, the NIC (gated), then QEMU.
    Status StartCopy(uint64_t epoch) {
      identity.epoch = epoch;
      if (failover) identity.store_id = failover->arbiter().store_id();
      std::weak_ptr<Impl> weak = shared_from_this();
      const auto& paths = runner.paths();
      std::error_code ec;
      fs::create_directories(paths.run_dir, ec);
      fifo_path = paths.run_dir + "/rr.fifo";
      counters_path = paths.run_dir + "/rr-counters";
      fs::remove(counters_path, ec);  // a stale one would be mapped before QEMU makes its own
      FT_ASSIGN_OR_RETURN(tap, replay::RrLogTap::Create(io, spec.name, fifo_path));
      tap->OnData([weak](uint64_t offset, std::string_view bytes,
                         const std::vector<replay::RrEvent>& events) {
        if (auto self = weak.lock()) self->OnLog(offset, bytes, events);
      });
      tap->OnEnd([weak](Status s) {
        if (auto self = weak.lock()) self->OnLogEnd(s);
      });

      RunOptions run;
      run.mode = replay::RunMode::kRecord;
      run.rr_file = fifo_path;
      run.extra_env = replay::RrShimEnv(
          {.shim_library = shim, .rr_path = fifo_path, .counters_path = counters_path});
      run.vm_state_drive = true;
      if (live) {
        run.loadvm = live->snapshot;
        // The replayer's RAM file, with the guest's RAM the snapshot leaves out.
        run.guest_ram = live->guest_ram;
        run.loadvm_without_ram = live->guest_ram != nullptr;
      }
      if (reprotect) {
        run.loadvm = replay::kReprotectSnapshot;
        run.rrsnapshot = replay::kBaseSnapshot;
      }
      runner.OnFailed([weak](const std::string& why) {
        if (auto self = weak.lock()) self->OnQemuFailed(why);
      });
      runner.OnRunning([weak] {
        if (auto self = weak.lock()) self->OnQemuRunning();
      });
      auto served = ServeNic(
          io, runner, spec, live ? net::Outbound::kOpen : net::Outbound::kGated,
          [weak]() -> Result<uint64_t> {
            auto self = weak.lock();
            if (!self) return Aborted("the primary is gone");
            return self->LogProduced();
          },
          live        ? live->guest_ipv4
          : reprotect ? reprotect->guest_ipv4
                      : std::nullopt);
      if (!served.ok()) {
        RemoveFiles();
        return served.status();
      }
      nic = std::move(served).value();
      ticker.Start();
      // A re-protection's disks are digested as shipped (their contents at kBaseSnapshot).
      if (!live && !reprotect && !spec.disks.empty()) {
        note = "hashing the disk images before QEMU starts (the handshake compares them)";
        digest_job =
            std::make_unique<BackgroundDigest>(io, spec, [weak, run](Result<std::string> digest) {
              auto self = weak.lock();
              if (!self || self->stopping) return;
              self->digest_job.reset();
              if (self->State() != FtState::kWaitingForPeer) return;  // halted meanwhile
              if (!digest.ok()) return self->StartFailed(digest.status());
              self->identity.replica_digest = *digest;
              self->note.clear();
              if (Status s = self->StartQemu(run); !s.ok()) self->StartFailed(s);
            });
        return Status::Ok();
      }
      if (Status s = StartQemu(run); !s.ok()) {
        CloseNic();
        RemoveFiles();
        return s;
      }
      return Status::Ok();
    }
    std::unique_ptr<BackgroundDigest> digest_job;

    // What could not start after Start() returned: said in the log and in status.
    void StartFailed(const Status& why) {
      vlog.error("not started: {}", why.ToString());
      note = "not started: " + why.message();
      if (failover) failover->CopyEnded(note);
      CloseNic();
      TellReprotectStarted(why);
    }

    // A re-protection waits for this copy to run from the snapshot: it hears once.
    void TellReprotectStarted(const Status& s) {
      if (!reprotect || !reprotect->on_started) return;
      auto started = std::move(reprotect->on_started);
      reprotect->on_started = nullptr;
      started(s);
    }

    Status StartQemu(const RunOptions& run) {
      FT_RETURN_IF_ERROR(runner.Start(run));
      tap->Start();
      if (live) {
        note = live->why;
        vlog.warn("LIVE from snapshot '{}' in epoch {}, running unprotected: {}", live->snapshot,
                  identity.epoch, live->why);
      } else {
        vlog.info(
            "primary, epoch {}, config {}, rr log version {:#010x}; backup at {}:{}; "
            "failover {}",
            identity.epoch, identity.config_digest.substr(0, 12), identity.rr_version,
            node.channel.peer_host, node.channel.peer_port, DescribeFailover(node));
        if (reprotect) {
          note = "re-protection: waiting for the new backup to start on the peer";
        } else {
          Connect();
        }
      }
      return Status::Ok();
    }

    // QEMU answers QMP. A copy that went live now owns the VM's network on this host: tell
    // the switch, and drop the snapshot it started from (the drive must not fill up).
    void OnQemuRunning() {
      if (reprotect) {
        // The same guest on a new TAP: tell the switch. Its starting point is saved.
        if (nic) nic->Announce();
        vlog.info(
            "re-protection: running again from snapshot '{}', starting point "
            "'{}' saved",
            replay::kReprotectSnapshot, replay::kBaseSnapshot);
        TellReprotectStarted(Status::Ok());
        return;
      }
      if (!live) return;
      if (nic) nic->Announce();
      if (!spec.disks.empty()) {
        // With disks the snapshot went into the first qcow2, and deleting it now would drain
        // the disks: a recorder cannot while a guest request is in flight (its completion
        // waits for a checkpoint of the blocked main loop), and QEMU hung (CI, 2026-11-24).
        // It is deleted before the next start (VmRunner) or replaced by the next go-live.
        vlog.info(
            "the go-live snapshot '{}' stays in the first disk until the next "
            "start",
            live->snapshot);
      } else if (auto qmp = runner.qmp()) {
        qmp->ExecuteHmp("delvm " + live->snapshot, 5s, [weak = weak_from_this()](Status s) {
          auto self = weak.lock();
          if (self && !s.ok()) {
            self->vlog.warn("could not delete the go-live snapshot: {}", s.ToString());
          }
        });
      }
      if (auto started = std::move(live->on_started)) {
        live->on_started = nullptr;
        started(Status::Ok());
      }
    }

    // The epoch this copy runs in and the log it has recorded, for vlog's lines.
    VmLogPosition LogPosition() const {
      VmLogPosition at;
      uint64_t epoch = failover ? failover->epoch() : identity.epoch;
      if (epoch) at.epoch = epoch;
      if (tap) at.log_offset = tap->offset();
      return at;
    }

    // ---- the log: tap -> unacked buffer -> channel
    void OnLog(uint64_t offset, std::string_view bytes,
               const std::vector<replay::RrEvent>& events) {
      if (nic) nic->OnLogEvents(events);
      protection.OnLog(offset, bytes);
    }

    void OnLogEnd(Status s) {
      log_closed = true;
      if (!s.ok()) vlog.error("{}", s.ToString());
      vlog.info("record log closed at {} bytes, icount {}", tap->offset(), tap->icount());
      // The shim's scan paces the VM; it must agree with the parser that feeds the backup.
      if (auto* c = Counters(); c && (c->scan_failed() || c->icount() != tap->icount())) {
        vlog.error("the flush shim scanned the log to icount {}{}, ftd parsed {}", c->icount(),
                   c->scan_failed() ? " (then failed)" : "", tap->icount());
      }
      MaybeFinishStop();
    }

    // ---- acks and pacing (PrimaryProtection)
    void OnAck(uint64_t received, uint64_t icount) {
      protection.OnAck(received, icount);
      MaybeFinishStop();
    }

    void Pace() { protection.Pace(); }

    // Pacing holds QEMU's vCPU before its next log event through the shim's `icount_limit`
    // word (the shim never holds QEMU's main thread: a held main loop delivers no timer
    // interrupts and a CPU-bound vCPU ran on for 300 ms of guest time without writing). What
    // is already written keeps flowing, so the backup can replay all of it. QMP `stop` was
    // measured too: it replays fine but takes effect 60-550 ms of guest time after it is sent.
    std::optional<replay::RrShimCounters> counters;

    // The shim's counters, mapped once QEMU has opened its log.
    replay::RrShimCounters* Counters() {
      if (!counters) {
        auto c = replay::RrShimCounters::Open(counters_path, /*writable=*/true);
        if (!c.ok()) return nullptr;
        counters.emplace(std::move(c).value());
      }
      return &*counters;
    }

    // Output commit: the log position when ftd reads an outbound frame (the gate's P).
    Result<uint64_t> LogProduced() {
      auto* c = Counters();
      if (!c) {
        return Unavailable(
            fmt::format("the record log counters '{}' are not mapped yet", counters_path));
      }
      return c->produced();
    }

    // Time QEMU waited in the shim: held for the backup, or blocked on a full buffer while
    // the tap was paused for memory. The shim adds a wait when it ends; add the one going on.
    std::chrono::milliseconds paced_time() const {
      std::chrono::nanoseconds total{0};
      if (counters) total = counters->blocked();
      if (protection.vcpu_held()) total += Clock::now() - protection.vcpu_held_since();
      return std::chrono::duration_cast<std::chrono::milliseconds>(total);
    }

    // ---- the channel
    void Connect() {
      if (connecting || session || State() != FtState::kWaitingForPeer || stopping) return;
      if (reprotect && !protection_begun) return;
      connecting = true;
      std::weak_ptr<Impl> weak = shared_from_this();
      channel::Connect(io, node.channel.peer_host, node.channel.peer_port, identity,
                       ChannelOptionsFrom(node.channel),
                       [weak](Result<std::shared_ptr<channel::Session>> r) {
                         if (auto self = weak.lock()) self->OnConnected(std::move(r));
                       });
    }

    void OnConnected(Result<std::shared_ptr<channel::Session>> r) {
      connecting = false;
      if (!r.ok()) {
        if (r.status().ToString() != last_connect_error.ToString()) {
          vlog.warn("backup at {}:{} not reachable: {}; retrying", node.channel.peer_host,
                    node.channel.peer_port, r.status().ToString());
          last_connect_error = r.status();
          note = "backup not connected: " + r.status().message();
        }
        if (State() != FtState::kWaitingForPeer || stopping) return;
        // A host that returned while its peer went live learns it here, before it runs on.
        failover->CheckStoreAgain();
        reconnect_timer.expires_after(kReconnectInterval);
        reconnect_timer.async_wait([weak = weak_from_this()](const std::error_code& ec) {
          if (auto self = weak.lock(); self && !ec) self->Connect();
        });
        return;
      }
      auto s = std::move(r).value();
      if (State() != FtState::kWaitingForPeer || stopping) return s->Close();
      session = s;
      std::weak_ptr<Impl> weak = shared_from_this();
      session->OnAck([weak](uint64_t received, uint64_t icount) {
        if (auto self = weak.lock()) self->OnAck(received, icount);
      });
      session->OnClosed([weak](Status why) {
        if (auto self = weak.lock()) self->OnSessionClosed(why);
      });
      session->OnLog([weak](uint64_t, std::string_view) {
        if (auto self = weak.lock()) self->LoseBackup(ProtocolError("the backup sent log data"));
      });
      note.clear();
      protection.OnBackupConnected(&backup_link);
      vlog.info("PROTECTED: backup '{}' connected; sent {} bytes of log held since start",
                s->peer().node, protection.unacked_bytes());
    }

    void OnSessionClosed(Status why) {
      session.reset();
      LoseBackup(why);
    }

    // The channel closed or the backup misbehaved: PrimaryProtection tells the authority.
    void LoseBackup(Status why) { protection.OnLinkLost(why); }

    // After the authority heard that the backup is lost (PrimaryProtection's callback).
    void OnBackupLost(const Status& why) {
      reconnect_timer.cancel();
      if (State() == FtState::kArbitrating) {
        note = fmt::format("backup lost ({}); holding output until the claim is decided",
                           why.ToString());
        vlog.warn("{}", note);
      }
      MaybeFinishStop();
    }

    // No backup to hold the log for (any more): what is held goes, no reconnects, no pacing.
    void StopWaitingForBackup() {
      protection.StopHolding();
      reconnect_timer.cancel();
    }

    // The authority halts this copy (lost the claim, stale, or the backup was lost while ftd
    // stops). It must never be seen again: its held output is dropped with the NIC and QEMU is
    // stopped (by the stop under way, if ftd is stopping).
    void Halt(const std::string& why) {
      note = why;
      TellReprotectStarted(Aborted(why));
      CloseNic();
      StopWaitingForBackup();
      if (stopping) return;
      std::weak_ptr<Impl> weak = shared_from_this();
      runner.Stop([weak] {
        if (auto self = weak.lock()) {
          if (self->tap) self->tap->Close();
          self->log_closed = true;
          self->vlog.error("halted; QEMU stopped");
        }
      });
    }

    // The authority opened the gate: this copy holds the newest epoch, won by itself (or
    // failover is off on both hosts). Held frames leave in order.
    void GoUnprotected(const std::string& why) {
      note.clear();
      StopWaitingForBackup();
      if (nic) nic->OpenGate();
      vlog.warn("running UNPROTECTED: {}", why);
      MaybeFinishStop();
    }

    // ---- operations: FT off, planned switchover, drill
    // The authority claims the next epoch first (unless this copy already runs alone in the
    // newest one): the gate opens only once the claim is won, whatever the peer did.
    Status TurnFtOff(const std::string& why) {
      if (failover) FT_RETURN_IF_ERROR(failover->TurnFtOff(why));
      if (live_failed) return FailedPrecondition(fmt::format("vm '{}': {}", spec.name, note));
      ft_off = true;
      if (State() == FtState::kArbitrating) {
        StopWaitingForBackup();
        vlog.warn("{}", failover->note());
      }
      return Status::Ok();
    }

    // The vCPU stops (QMP stop; pacing lets go so it can), the tap reads what QEMU wrote, and
    // the backup acks all of it. Polled every 5 ms; the gate releases frames as acks come.
    void DrainForHandover(std::chrono::milliseconds timeout,
                          std::function<void(Result<uint64_t>)> done) {
      if (State() != FtState::kProtected || !session) {
        return done(FailedPrecondition(fmt::format(
            "vm '{}' is {} here, not protected: there is no backup to hand over to{}", spec.name,
            PrimaryStateName(State()), Note().empty() ? "" : " (" + Note() + ")")));
      }
      auto qmp = runner.qmp();
      if (!qmp)
        return done(
            Unavailable(fmt::format("vm '{}': QEMU's monitor is not connected", spec.name)));
      protection.BeginHandover();  // no pacing now: a vCPU held in a log write could not stop
      vlog.info("planned failover: stopping the vCPU and draining the log to '{}'",
                session->peer().node);
      auto deadline = Clock::now() + timeout;
      std::weak_ptr<Impl> weak = shared_from_this();
      qmp->Execute("stop", replay::Json::object(), timeout,
                   [weak, deadline, done = std::move(done)](Result<replay::Json> r) mutable {
                     auto self = weak.lock();
                     if (!self) return done(Aborted("the primary is gone"));
                     if (!r.ok()) {
                       self->AbortHandover("the vCPU did not stop: " + r.status().ToString());
                       return done(r.status());
                     }
                     self->WaitForDrain(deadline, std::move(done));
                   });
    }

    void WaitForDrain(Clock::time_point deadline, std::function<void(Result<uint64_t>)> done) {
      switch (protection.CheckDrain(deadline)) {
        case PrimaryProtection::Drain::kBackupLost:
          AbortHandover("the backup was lost while draining");
          return done(Aborted(
              fmt::format("vm '{}': the backup was lost while draining ({})", spec.name, Note())));
        case PrimaryProtection::Drain::kDone:
          vlog.info(
              "planned failover: the backup acknowledged the whole log ({} bytes, "
              "icount {})",
              protection.acked(), tap->icount());
          return done(protection.acked());
        case PrimaryProtection::Drain::kTimedOut: {
          Status s = Timeout(fmt::format(
              "vm '{}': the backup acknowledged {} of {} log bytes ({} produced) before the "
              "deadline",
              spec.name, protection.acked(), record_log.read_bytes(),
              record_log.written_bytes().value_or(0)));
          AbortHandover(s.message());
          return done(s);
        }
        case PrimaryProtection::Drain::kWaiting:
          break;
      }
      drain_timer.expires_after(5ms);
      drain_timer.async_wait([weak = weak_from_this(), deadline,
                              done = std::move(done)](const std::error_code& ec) mutable {
        auto self = weak.lock();
        if (!self || ec) return done(Aborted("the primary is stopping"));
        if (self->stopping) {
          self->protection.EndHandover();
          return done(Aborted(fmt::format("vm '{}': ftd is stopping", self->spec.name)));
        }
        self->WaitForDrain(deadline, std::move(done));
      });
    }

    void AbortHandover(const std::string& why) {
      if (!protection.handing_over()) return;
      protection.EndHandover();
      vlog.warn("planned failover abandoned ({}); resuming the vCPU", why);
      if (auto qmp = runner.qmp()) {
        qmp->Execute("cont", replay::Json::object(), 5s, [](Result<replay::Json>) {});
      }
    }

    Status CompleteHandover(const std::string& to_node) {
      if (!protection.handing_over() || State() != FtState::kProtected || !session) {
        // The channel dropped while the peer's answer was on its way: the claim decides now,
        // and this copy must not halt on top of it.
        return Aborted(fmt::format(
            "vm '{}': the channel to '{}' closed before the handover completed; the failover "
            "claim decides which copy runs ({})",
            spec.name, to_node, PrimaryStateName(State())));
      }
      // The backup claims the next epoch; this copy does not contest it and never sends again.
      std::string why =
          fmt::format("handed over to '{}' (planned failover); this copy is stopped", to_node);
      failover->CopyEnded(why);
      Halt(why);
      return Status::Ok();
    }

    // The copy dies as in a host crash: QEMU is SIGKILLed (it is ftd's own child) and the
    // channel goes silent, so the backup learns it only from its heartbeat timeout.
    Status PlayDead() {
      if (State() != FtState::kProtected || !session) {
        return FailedPrecondition(fmt::format(
            "vm '{}' is {} here, not protected: a drill needs a backup that can take over",
            spec.name, PrimaryStateName(State())));
      }
      int pid = runner.qemu_pid();
      if (pid <= 0)
        return FailedPrecondition(fmt::format("vm '{}': QEMU is not running", spec.name));
      note = "killed by a failover drill";
      failover->CopyEnded(note);  // a dead copy claims nothing
      CloseNic();
      silent_session = std::move(session);
      silent_session->GoSilent();
      ::kill(pid, SIGKILL);
      vlog.warn("DRILL: QEMU (pid {}) killed, channel to '{}' silent", pid,
                silent_session->peer().node);
      return Status::Ok();
    }

    void OnQemuFailed(const std::string& why) {
      if (State() == FtState::kHalted) return;  // a drill or a halt stopped it on purpose
      note = "QEMU failed: " + why;
      // A copy without QEMU releases nothing; its backup (if any) sees the channel close.
      if (failover) failover->CopyEnded(note);
      live_failed = !failover;
      if (live && live->on_started) {
        auto started = std::move(live->on_started);
        live->on_started = nullptr;
        started(Unavailable(
            fmt::format("QEMU did not start from snapshot '{}': {}", live->snapshot, why)));
      }
      TellReprotectStarted(Unavailable(fmt::format("QEMU did not start from snapshot '{}': {}",
                                                   replay::kReprotectSnapshot, why)));
      CloseNic();
      if (session) {
        session->Close();
        session.reset();
      }
    }

    // ---- re-protection (docs/design.md, "Re-protection")
    // Step 1, on the copy that runs unprotected: the vCPU stops, the VM is saved in the
    // VM-state drive, QEMU quits. The next copy (MakeReprotectingPrimaryVm) starts from it.
    void SaveForReprotect(std::function<void(Result<ReprotectPoint>)> done) {
      auto qmp = runner.qmp();
      if (State() != FtState::kUnprotected || stopping || saving_for_reprotect || !qmp ||
          runner.state() != VmState::kRunning) {
        return done(FailedPrecondition(fmt::format(
            "vm '{}' is {} here{}: only a running copy without a backup can be re-protected",
            spec.name,
            runner.state() == VmState::kRunning ? PrimaryStateName(State())
                                                : VmStateName(runner.state()),
            Note().empty() ? "" : " (" + Note() + ")")));
      }
      saving_for_reprotect = true;
      vlog.info("re-protection: stopping the vCPU and saving the VM as '{}'",
                replay::kReprotectSnapshot);
      qmp->Execute("stop", replay::Json::object(), 10s,
                   [weak = weak_from_this(), done = std::move(done)](Result<replay::Json> r) {
                     auto self = weak.lock();
                     if (!self) return done(Aborted("the primary is gone"));
                     if (!r.ok()) return self->ResumeAfterFailedSave(r.status(), done);
                     self->TrySaveForReprotect(1, done);
                   });
    }

    void TrySaveForReprotect(int attempt, std::function<void(Result<ReprotectPoint>)> done) {
      auto qmp = runner.qmp();
      if (!qmp || stopping) return ResumeAfterFailedSave(Aborted("ftd is stopping"), done);
      // With the RAM: the next copy's backup, on the peer, loads it from this snapshot.
      replay::SaveVm(
          qmp, replay::kReprotectSnapshot, replay::SnapshotRam::kIncluded, 60s,
          [weak = weak_from_this(), attempt, done = std::move(done)](Status saved) mutable {
            auto self = weak.lock();
            if (!self) return done(Aborted("the primary is gone"));
            if (saved.ok()) return self->QuitForReprotect(attempt, std::move(done));
            bool events_queued =
                saved.message().find("does not allow making snapshot") != std::string::npos;
            if (!events_queued || attempt >= kSaveAttempts || self->stopping) {
              return self->ResumeAfterFailedSave(saved, done);
            }
            // The recorder has events queued: let the vCPU run to take them, then stop again.
            auto monitor = self->runner.qmp();
            if (!monitor) return self->ResumeAfterFailedSave(saved, done);
            monitor->Execute(
                "cont", replay::Json::object(), 10s, [weak, attempt, done](auto) mutable {
                  auto me = weak.lock();
                  if (!me) return done(Aborted("the primary is gone"));
                  me->drain_timer.expires_after(kSaveRetryRun);
                  me->drain_timer.async_wait(
                      [weak, attempt, done](const std::error_code& ec) mutable {
                        auto me2 = weak.lock();
                        if (!me2 || ec) return done(Aborted("the primary is stopping"));
                        auto q = me2->runner.qmp();
                        if (!q)
                          return me2->ResumeAfterFailedSave(Aborted("QEMU's monitor closed"), done);
                        q->Execute("stop", replay::Json::object(), 10s,
                                   [weak, attempt, done](Result<replay::Json> r) mutable {
                                     auto me3 = weak.lock();
                                     if (!me3) return done(Aborted("the primary is gone"));
                                     if (!r.ok())
                                       return me3->ResumeAfterFailedSave(r.status(), done);
                                     me3->TrySaveForReprotect(attempt + 1, std::move(done));
                                   });
                      });
                });
          });
    }

    void ResumeAfterFailedSave(const Status& why,
                               const std::function<void(Result<ReprotectPoint>)>& done) {
      saving_for_reprotect = false;
      vlog.warn("re-protection: could not save the VM ({}); it runs on unprotected",
                why.ToString());
      if (auto qmp = runner.qmp()) {
        qmp->Execute("cont", replay::Json::object(), 10s, [](Result<replay::Json>) {});
      }
      done(why.WithContext(fmt::format("vm '{}': saving the running VM", spec.name)));
    }

    void QuitForReprotect(int attempts, std::function<void(Result<ReprotectPoint>)> done) {
      ReprotectPoint point;
      point.guest_ipv4 = nic ? nic->guest_ipv4() : std::nullopt;
      vlog.info("re-protection: saved as '{}'{}; QEMU quits", replay::kReprotectSnapshot,
                attempts > 1 ? fmt::format(" (after {} tries: events were queued)", attempts) : "");
      note = "saved for re-protection; the next copy continues it";
      if (failover) failover->CopyEnded(note);
      CloseNic();
      runner.Stop([weak = weak_from_this(), point, done = std::move(done)]() mutable {
        auto self = weak.lock();
        if (!self) return done(Aborted("the primary is gone"));
        if (self->tap) self->tap->Close();
        self->log_closed = true;
        // Out of this copy's way: its files go when it is removed; the next copy loads it.
        const auto& paths = self->runner.paths();
        point.saved_drive = paths.run_dir + "/reprotect-vm-state.qcow2";
        if (::rename(paths.vm_state_drive.c_str(), point.saved_drive.c_str()) != 0) {
          return done(ErrnoStatus(fmt::format("vm '{}': moving the saved VM-state drive '{}'",
                                              self->spec.name, paths.vm_state_drive),
                                  errno));
        }
        done(point);
      });
    }

    // The new backup runs on the peer: connect to it.
    Status BeginProtection(const std::string& replica_digest) {
      if (!reprotect || protection_begun || State() != FtState::kWaitingForPeer || stopping) {
        return FailedPrecondition(fmt::format(
            "vm '{}' is {} here: not a primary waiting for the backup of a re-protection",
            spec.name, PrimaryStateName(State())));
      }
      protection_begun = true;
      identity.replica_digest = replica_digest;
      note = "re-protection: connecting to the new backup";
      Connect();
      return Status::Ok();
    }

    // The re-protection failed: the authority claims the next epoch and opens the gate.
    void AbandonProtection(const std::string& why) {
      if (State() != FtState::kWaitingForPeer || !failover) return;
      failover->GiveUpWaiting("re-protection failed: " + why);
      StopWaitingForBackup();
    }

    void OnTick() {
      if (tap) rate.Add(tap->offset());
      protection.OnTick();  // the replay-stall guard, then pacing
    }

    // ---- orderly stop: QEMU quits (END goes into the log), the tap reads to EOF, the
    // backup acks the last byte (bounded), then the channel closes.
    void Stop(std::function<void()> done) {
      if (stopping && on_stopped) {
        // Already stopping (ftd's shutdown and an operation's removal can meet): both hear.
        on_stopped = [first = std::move(on_stopped), done = std::move(done)] {
          first();
          done();
        };
        return;
      }
      on_stopped = std::move(done);
      stopping = true;
      // From here nothing opens the gate: a backup lost now means held output is dropped.
      if (failover) failover->Stopping();
      reconnect_timer.cancel();
      protection.Stopping();  // no pacing: QEMU's last log writes must not block its exit
      std::weak_ptr<Impl> weak = shared_from_this();
      runner.Stop([weak] {
        auto self = weak.lock();
        if (!self) return;
        self->qemu_gone = true;
        // No log to wait for: QEMU never wrote any (or never started: a stale copy).
        if (!self->log_closed && (!self->tap || self->tap->offset() == 0)) {
          self->log_closed = true;
        }
        self->stop_timer.expires_after(kFinalAckWait);
        self->stop_timer.async_wait([weak](const std::error_code& ec) {
          auto me = weak.lock();
          if (!me || ec) return;
          me->vlog.warn("backup did not ack the end of the log within {} s",
                        std::chrono::duration_cast<std::chrono::seconds>(kFinalAckWait).count());
          me->FinishStop();
        });
        self->MaybeFinishStop();
      });
    }
    bool qemu_gone = false;

    void MaybeFinishStop() {
      if (!stopping || !qemu_gone) return;
      // Without the log's end the backup cannot finish; wait for EOF (bounded by the timer).
      if (!log_closed) return;
      if (session && protection.acked() < tap->offset()) return;
      FinishStop();
    }

    void FinishStop() {
      if (!on_stopped) return;
      if (session) {
        vlog.info("backup acked the whole log ({} bytes)", protection.acked());
        session->Close();
        session.reset();
      }
      Shutdown();
      auto done = std::move(on_stopped);
      on_stopped = nullptr;
      done();
    }

    void Shutdown() {
      digest_job.reset();
      reconnect_timer.cancel();
      ticker.Stop();
      stop_timer.cancel();
      drain_timer.cancel();
      if (silent_session) silent_session->Close();
      silent_session.reset();
      if (session) {
        session->Close();
        session.reset();
      }
      if (tap) tap->Close();
      CloseNic();
      RemoveFiles();
    }

    void CloseNic() {
      if (nic) nic->Close();
      nic.reset();
    }

    void RemoveFiles() {
      std::error_code ec;
      if (!fifo_path.empty()) fs::remove(fifo_path, ec);
      if (!counters_path.empty()) fs::remove(counters_path, ec);
      fs::remove(runner.paths().vm_state_drive, ec);
      fs::remove(runner.paths().run_dir, ec);  // only if empty
    }

    // The authority's note where it decides the state; this role's own while it waits.
    std::string Note() const {
      FtState state = State();
      bool waiting = state == FtState::kWaitingForPeer || state == FtState::kProtected;
      if (!failover || (waiting && !note.empty())) return note;
      return failover->note().empty() ? note : failover->note();
    }

    VmReport Report() const {
      VmReport r;
      FillRunnerReport(runner, "record", r);
      // FT turned off: the VM still runs (and records, until it restarts), but it is no
      // one's primary any more; `ftctl list` says so.
      const bool off = ft_off && State() == FtState::kUnprotected;
      r.role = off ? FtRole::kOff : FtRole::kPrimary;
      r.ft_state = off ? VmFtState::kOff : ReportedFtState(State(), FtRole::kPrimary);
      r.ft_note = Note();
      r.epoch = failover ? failover->epoch() : identity.epoch;
      r.peer = session ? session->peer().node
                       : fmt::format("{}:{}", node.channel.peer_host, node.channel.peer_port);
      r.log_bytes = tap ? tap->offset() : 0;
      r.acked_bytes = protection.acked();
      r.log_bytes_per_sec = rate.PerSecond();
      r.log_icount = protection.log_icount();
      r.replayed_icount = protection.replayed_icount();
      r.lag_instructions = State() == FtState::kProtected ? protection.lag_instructions() : 0;
      r.lag_ms = GuestMs(r.lag_instructions, spec.icount_shift);
      r.last_ack_ms_ago = MsSince(protection.last_ack());
      r.paced_ms = static_cast<uint64_t>(paced_time().count());
      r.channel_rtt_us = session ? session->stats().last_rtt_us : 0;
      if (nic) r.nic = nic->stats();
      if (failover) failover->FillReport(r);
      return r;
    }
  };

  std::shared_ptr<Impl> impl_;
};

}  // namespace

std::unique_ptr<ManagedVm> MakePrimaryVm(asio::io_context& io, const NodeConfig& node,
                                         const domain::VmSpec& spec) {
  return std::make_unique<PrimaryVm>(io, node, spec, std::nullopt);
}

std::unique_ptr<ManagedVm> MakeReprotectingPrimaryVm(asio::io_context& io, const NodeConfig& node,
                                                     const domain::VmSpec& spec,
                                                     ReprotectStart start) {
  return std::make_unique<PrimaryVm>(io, node, spec, std::nullopt, std::move(start));
}

std::unique_ptr<ManagedVm> MakeLivePrimaryVm(asio::io_context& io, const NodeConfig& node,
                                             const domain::VmSpec& spec, LiveStart live) {
  return std::make_unique<PrimaryVm>(io, node, spec, std::move(live));
}

}  // namespace ft::daemon
