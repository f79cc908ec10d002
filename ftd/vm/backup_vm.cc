// The backup of a protected VM: waits for its primary's ftd, then feeds the primary's log
// into a replaying QEMU started from the same initial state. The replayer is held by a
// replay-break inside the received log (ReplayFeeder), so it never reaches the end of what
// arrived. Every received chunk is acked with the replay position, which the primary uses
// for output commit and pacing.
//
// Failover (node has shared_storage): when the primary is lost the replayer runs on to the
// end of what was received while the claim for the next epoch is made; a backup that wins
// goes live -- replay to the last complete event, savevm, quit, and a recording QEMU started
// from that snapshot (a LivePrimaryVm) takes the VM's network on this host. One that loses
// halts.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <time.h>

#include <asio.hpp>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "backup_follow.h"
#include "enabled_vms.h"
#include "failover.h"
#include "ft/log.h"
#include "ft/replay/guest_ram.h"
#include "ft/replay/qmp_client.h"
#include "ft/replay/replay_feeder.h"
#include "ft/replay/savevm.h"
#include "ft/replay/vm_state_drive.h"
#include "ft/utc_time.h"
#include "go_live.h"
#include "roles.h"
#include "vm_log.h"
#include "vm_records.h"

namespace ft::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kAckInterval = 20ms;  // acks also carry the replay position: refresh it
constexpr auto kReplayStallWarning = 3s;
constexpr auto kCatchUpPoll = 5ms;

class BackupVm : public ManagedVm {
 public:
  BackupVm(asio::io_context& io, const NodeConfig& node, const domain::VmSpec& spec,
           std::optional<BackupFromSnapshot> from)
      : impl_(std::make_shared<Impl>(io, node, spec)) {
    impl_->from = std::move(from);
  }
  ~BackupVm() override { impl_->Shutdown(); }

  const std::string& name() const override { return impl_->spec.name; }
  const domain::VmSpec& spec() const override { return impl_->spec; }
  FtRole role() const override { return FtRole::kBackup; }
  Status Start() override { return impl_->Start(); }
  void Stop(std::function<void()> done) override { impl_->Stop(std::move(done)); }
  void OnChildSignal() override {
    impl_->runner.OnChildSignal();
    if (impl_->successor) impl_->successor->OnChildSignal();
  }
  VmReport Report() const override { return impl_->Report(); }
  Result<channel::Identity> ExpectPrimary() override { return impl_->ExpectPrimary(); }
  void AdoptSession(std::shared_ptr<channel::Session> s) override { impl_->Adopt(std::move(s)); }
  Status AcceptHandover(uint64_t log_end) override { return impl_->AcceptHandover(log_end); }
  // A copy that went live answers as the primary it now is.
  Status TurnFtOff(const std::string& why) override {
    if (impl_->successor) return impl_->successor->TurnFtOff(why);
    return ManagedVm::TurnFtOff(why);
  }
  void DrainForHandover(std::chrono::milliseconds timeout,
                        std::function<void(Result<uint64_t>)> done) override {
    if (impl_->successor) return impl_->successor->DrainForHandover(timeout, std::move(done));
    ManagedVm::DrainForHandover(timeout, std::move(done));
  }
  Status PlayDead() override {
    if (impl_->successor) return impl_->successor->PlayDead();
    return ManagedVm::PlayDead();
  }
  void SaveForReprotect(std::function<void(Result<ReprotectPoint>)> done) override {
    if (impl_->successor) return impl_->successor->SaveForReprotect(std::move(done));
    ManagedVm::SaveForReprotect(std::move(done));
  }

 private:
  struct Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& io_context, const NodeConfig& node_config, const domain::VmSpec& s)
        : io(io_context),
          node(node_config),
          spec(s),
          runner(io_context, node_config, s),
          log(Logger("lockstep")),
          vlog(log, s.name, [this] { return LogPosition(); }),
          ack_timer(io_context),
          catch_up_timer(io_context),
          replay_progress(*this),
          authority(*this),
          follow(s.name, authority, replay_progress, vlog),
          go_live_steps(*this),
          go_live(go_live_steps, authority, vlog) {
      go_live.OnLive([this] { OnLive(); });
    }

    asio::io_context& io;
    NodeConfig node;
    domain::VmSpec spec;
    VmRunner runner;
    std::shared_ptr<spdlog::logger> log;
    VmLog vlog;  // "vm 'web1' (epoch 3, log 1048576): " on every line about this VM
    asio::steady_timer ack_timer, catch_up_timer;
    channel::Identity identity;
    // The authority (arbiter/): whether this copy may accept a primary, go live, or halts.
    std::shared_ptr<Failover> failover;
    std::unique_ptr<ManagedVm> successor;  // after go-live: the recording primary
    // Set: the backup of a running VM; the replayer starts from kBaseSnapshot.
    std::optional<BackupFromSnapshot> from;
    std::shared_ptr<channel::Session> session;
    std::shared_ptr<replay::ReplayFeeder> feeder;
    std::shared_ptr<net::GuestNic> nic;  // nic = bridge: frames the replayed guest sends end here
    std::string fifo_path;
    std::shared_ptr<replay::GuestRam> guest_ram;  // the replayer's RAM (go-live hands it on)
    // The replayer's QEMU said it can start a copy from a snapshot without the RAM
    // (replay::ProbeLoadvmWithoutRam); until it has, go-live saves the RAM.
    bool loadvm_without_ram = false;
    bool replayer_started = false;
    bool replayer_running = false;  // its QMP answered: the feeder drives it
    bool stopping = false;          // Stop() was called: a go-live in progress goes no further
    RateMeter rate;
    Clock::time_point last_ack_sent{};
    // Diagnostics for benchmarks: FTD_TRACE_LOG_RECEIPTS=PATH appends "<end offset>
    // <CLOCK_MONOTONIC ns>" per received chunk (docs/benchmarks.md).
    FILE* receipts = nullptr;

    // ---- the ports BackupFollow and GoLive act on (ports.h, go_live.h)
    struct FeederProgress : ReplayProgress {
      explicit FeederProgress(const Impl& i) : impl(i) {}
      bool started() const override { return impl.replayer_started && impl.feeder; }
      bool caught_up() const override { return impl.feeder && impl.feeder->caught_up(); }
      bool ended() const override { return impl.feeder && impl.feeder->stats().ended; }
      uint64_t received_icount() const override {
        return impl.feeder ? impl.feeder->stats().received_icount : 0;
      }
      uint64_t replayed_icount() const override {
        return impl.feeder ? impl.feeder->stats().replayed_icount : 0;
      }
      uint64_t break_icount() const override {
        return impl.feeder ? impl.feeder->stats().break_icount : 0;
      }
      const Impl& impl;
    };
    // The Failover, which exists from Start() on.
    struct FailoverAuthority : Authority {
      explicit FailoverAuthority(Impl& i) : impl(i) {}
      arbiter::FtState state() const override { return impl.failover->state(); }
      bool on() const override { return impl.failover->on(); }
      void PeerConnected() override { impl.failover->PeerConnected(); }
      void PeerLost(const std::string& why) override { impl.failover->PeerLost(why); }
      void CaughtUp() override { impl.failover->CaughtUp(); }
      void GiveUpWaiting(const std::string& why) override { impl.failover->GiveUpWaiting(why); }
      void CopyEnded(const std::string& why) override { impl.failover->CopyEnded(why); }
      void MarkReplayEnded() override { impl.failover->MarkReplayEnded(); }
      void MarkSnapshotSaved() override { impl.failover->MarkSnapshotSaved(); }
      void GoLiveDone(const Status& s) override { impl.failover->GoLiveDone(s); }
      Impl& impl;
    };
    // Going live with this host's replayer and a recording QEMU (go_live.h has the order).
    // A step's answer is dropped if the role is gone.
    struct ReplayerGoLive : GoLiveSteps {
      explicit ReplayerGoLive(Impl& i) : impl(i) {}
      Status WriteWentLiveRecord(uint64_t epoch) override {
        // From here the replicas are this VM's disks, perhaps the only current ones: nothing
        // a peer asks may write over or remove them (vm_records.h, the went-live record).
        return ::ft::daemon::WriteWentLiveRecord(impl.node, impl.spec.name, epoch);
      }
      void ReplayToEnd(std::function<void(Result<uint64_t>)> done) override {
        impl.feeder->GoLive([weak = impl.weak_from_this(), done](Result<uint64_t> end) {
          if (weak.lock()) done(std::move(end));
        });
      }
      void SaveSnapshot(std::function<void(Status)> done) override {
        auto qmp = impl.runner.qmp();
        if (!qmp) return done(Unavailable("the replayer's monitor is not connected"));
        // The RAM stays in the replayer's RAM file, which the recording QEMU maps, if this
        // QEMU can load it that way; otherwise it goes through the snapshot.
        auto ram = impl.loadvm_without_ram ? replay::SnapshotRam::kInGuestRamFile
                                           : replay::SnapshotRam::kIncluded;
        replay::SaveVm(qmp, replay::kGoLiveSnapshot, ram, 30s,
                       [weak = impl.weak_from_this(), done](Status saved) {
                         if (weak.lock()) done(saved);
                       });
      }
      void StopReplayer(std::function<void()> done) override { impl.StopReplayer(std::move(done)); }
      void StartLiveCopy(std::function<void(Status)> done) override {
        impl.StartSuccessor(std::move(done));
      }
      Impl& impl;
    };
    FeederProgress replay_progress;
    FailoverAuthority authority;
    BackupFollow follow;
    ReplayerGoLive go_live_steps;
    GoLive go_live;

    Status Start() {
      FT_ASSIGN_OR_RETURN(identity, LocalIdentity(node, spec, /*digest_replicas=*/false));
      std::weak_ptr<Impl> weak = shared_from_this();
      if (from) {
        identity.replica_digest = from->replica_digest;
        replicas_hashed = true;
      } else if (!spec.disks.empty()) {
        // Hashed off the event loop; a primary that connects meanwhile is asked to retry.
        digest_job = std::make_unique<BackgroundDigest>(io, spec, [weak](Result<std::string> d) {
          auto self = weak.lock();
          if (!self) return;
          self->digest_job.reset();
          if (!d.ok()) return self->Fail("cannot hash the disk replicas: " + d.status().message());
          self->identity.replica_digest = *d;
          self->replicas_hashed = true;
        });
      } else {
        replicas_hashed = true;
      }
      FailoverHooks hooks;
      hooks.start_copy = [weak](uint64_t epoch) {
        auto self = weak.lock();
        if (!self) return;
        self->identity.epoch = epoch;
        self->identity.store_id = self->failover->arbiter().store_id();
        self->store_checked = true;
        self->vlog.info(
            "the claim store allows this backup in epoch {}; waiting for "
            "the primary",
            epoch);
      };
      hooks.go_live = [weak](uint64_t epoch) {
        if (auto self = weak.lock()) self->OnClaimWon(epoch);
      };
      hooks.halt = [weak](const std::string& why) {
        if (auto self = weak.lock()) self->Halt(why);
      };
      failover = Failover::Create(io, node, spec.name, arbiter::Role::kBackup, identity.epoch,
                                  std::move(hooks));
      failover->Start();
      vlog.info(
          "backup, epoch {}, config {}, rr log version {:#010x}; waiting for the "
          "primary on {}:{}; failover {}",
          identity.epoch, identity.config_digest.substr(0, 12), identity.rr_version,
          node.channel.listen_host, node.channel.listen_port, DescribeFailover(node));
      return Status::Ok();
    }

    Result<channel::Identity> ExpectPrimary() {
      if (successor) return LiveRefusal();
      if (failover->state() == arbiter::FtState::kStale) {
        return FailedPrecondition(
            fmt::format("vm '{}' on this host: {}", spec.name, failover->note()));
      }
      if (!store_checked) {
        return FailedPrecondition(
            fmt::format("vm '{}': this backup is still reading the claim store before it accepts a "
                        "primary ({}); try again shortly",
                        spec.name, failover->note()));
      }
      if (session) {
        return FailedPrecondition(fmt::format("vm '{}' already replays the log of primary '{}'",
                                              spec.name, session->peer().node));
      }
      if (follow.state() != BackupState::kWaitingForPrimary) {
        // The replica is past the start of the log; it cannot follow a new stream from 0.
        return FailedPrecondition(fmt::format(
            "vm '{}': this backup is {} and cannot start over; restart its ftd to re-protect",
            spec.name, BackupStateName(follow.state())));
      }
      if (!replicas_hashed) {
        return FailedPrecondition(fmt::format(
            "vm '{}': still hashing its disk replicas (the handshake compares them); try again "
            "shortly",
            spec.name));
      }
      return identity;
    }

    // A primary connects to a copy that went live here: it is the stale one. Say what is
    // true and what to do; restarting this host's ftd would stop the only live copy.
    Status LiveRefusal() const {
      return FailedPrecondition(fmt::format(
          "vm '{}' is live on node '{}' in epoch {}{}: the connecting copy is stale and must "
          "not run. Its host's ftd keeps it stopped once it reads the claim store; turn FT off "
          "there ('ftctl disable {}' on that host) to remove it. Do not restart ftd on '{}': "
          "that stops the only live copy",
          spec.name, node.name, failover->epoch(), LiveSince(), spec.name, node.name));
    }
    std::string LiveSince() const {
      const auto& newest = failover->arbiter().newest_claim();
      if (!newest || newest->winner != node.name) return "";
      return " since " + FormatUtcMs(newest->unix_time_ms);
    }
    bool store_checked = false;  // the authority let this copy run (StartCopy)

    void Adopt(std::shared_ptr<channel::Session> s) {
      if (session || follow.state() != BackupState::kWaitingForPrimary) return s->Close();
      Status st = CreateFeeder();
      if (!st.ok()) {
        vlog.error("{}", st.ToString());
        Fail(st.message());
        return s->Close();
      }
      session = std::move(s);
      std::weak_ptr<Impl> weak = shared_from_this();
      session->OnLog([weak](uint64_t offset, std::string_view data) {
        if (auto self = weak.lock()) self->OnLog(offset, data);
      });
      session->OnClosed([weak](Status why) {
        if (auto self = weak.lock()) self->OnSessionClosed(why);
      });
      follow.OnPrimaryConnected(session->peer().node);
      vlog.info("primary '{}' connected; replaying its log", follow.peer_node());
      if (const char* trace = getenv("FTD_TRACE_LOG_RECEIPTS"); trace && *trace && !receipts) {
        receipts = std::fopen(trace, "we");
      }
      AckTick();
    }

    Status CreateFeeder() {
      const auto& paths = runner.paths();
      std::error_code ec;
      fs::create_directories(paths.run_dir, ec);
      fifo_path = paths.run_dir + "/rr.fifo";
      unlink(fifo_path.c_str());
      if (mkfifo(fifo_path.c_str(), 0600) != 0) {
        return ErrnoStatus(fmt::format("cannot create the replay log FIFO '{}'", fifo_path), errno);
      }
      // Read-write: opening never waits for the replayer, and its EOF never comes early.
      int fd = open(fifo_path.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) {
        return ErrnoStatus(fmt::format("cannot open the replay log FIFO '{}'", fifo_path), errno);
      }
      FT_ASSIGN_OR_RETURN(feeder,
                          replay::ReplayFeeder::Create(io, spec.name, fd, identity.rr_version));
      std::weak_ptr<Impl> weak = shared_from_this();
      feeder->OnError([weak](Status s) {
        if (auto self = weak.lock()) self->Fail("replay feeder: " + s.message());
      });
      return Status::Ok();
    }

    void OnLog(uint64_t offset, std::string_view data) {
      follow.OnLog(offset, data.size());
      const uint64_t received = follow.received();
      if (receipts) {
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        std::fprintf(receipts, "%llu %lld\n", static_cast<unsigned long long>(received),
                     static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec);
        std::fflush(receipts);  // read while ftd runs (tests, benchmarks)
      }
      if (Status s = feeder->Append(data); !s.ok()) {
        // A log this parser refuses is never fed to QEMU: stop here, loudly.
        vlog.error("refusing the primary's log at offset {}: {}", offset, s.ToString());
        Fail("corrupt log from the primary: " + s.message());
        return;
      }
      // With END fed, the replayer runs the log out and exits: that is how a backup finishes.
      if (feeder->stats().ended)
        runner.ExpectExit("the replay reached the end of the primary's log");
      if (!replayer_started && feeder->ready_to_start()) StartReplayer();
      SendAck();
    }

    void StartReplayer() {
      replayer_started = true;
      RunOptions run;
      run.mode = replay::RunMode::kReplay;
      run.rr_file = fifo_path;
      run.start_paused = true;
      run.vm_state_drive = true;                         // where go-live saves the VM
      if (from) run.rrsnapshot = replay::kBaseSnapshot;  // in place before Start()
      // The guest's RAM in a file this role holds: at go-live it stays for the recording
      // QEMU, and the snapshot carries only the device state (docs/design.md, "Failover").
      // A new file for each replayer: one that boots must see RAM as the recorder did.
      auto ram = replay::GuestRam::Create(spec.name, uint64_t{spec.memory_mib} << 20);
      if (!ram.ok()) {
        vlog.error("cannot start the replayer: {}", ram.status().ToString());
        return Fail(ram.status().message());
      }
      guest_ram = std::move(ram).value();
      run.guest_ram = guest_ram;
      std::weak_ptr<Impl> weak = shared_from_this();
      runner.OnRunning([weak] {
        auto self = weak.lock();
        if (!self || !self->feeder) return;
        self->replayer_running = true;
        self->feeder->Start(self->runner.qmp());
        replay::ProbeLoadvmWithoutRam(self->runner.qmp(), [weak](bool can) {
          auto me = weak.lock();
          if (!me) return;
          me->loadvm_without_ram = can;
          if (!can) {
            me->vlog.warn(
                "this QEMU cannot start from a snapshot without the guest's RAM (it lacks "
                "replay/qemu-patches/loadvm-without-ram-from-a-shared-memory-file.patch): a "
                "go-live will save and load all of the RAM, about 0.3 s slower");
          }
        });
      });
      runner.OnFailed([weak](const std::string& why) {
        if (auto self = weak.lock()) self->OnReplayerEnded(why);
      });
      auto served = ServeNic(io, runner, spec, net::Outbound::kDrop);
      if (!served.ok()) {
        vlog.error("cannot serve the replayer's NIC: {}", served.status().ToString());
        return Fail(served.status().message());
      }
      nic = std::move(served).value();
      if (Status s = runner.Start(run); !s.ok()) {
        vlog.error("cannot start the replayer: {}", s.ToString());
        Fail(s.message());
      }
    }

    void SendAck() {
      if (!session) return;
      session->SendAck(follow.received(), feeder ? feeder->stats().replayed_icount : 0);
      last_ack_sent = Clock::now();
    }

    void AckTick() {
      ack_timer.expires_after(kAckInterval);
      ack_timer.async_wait([weak = weak_from_this()](const std::error_code& ec) {
        auto self = weak.lock();
        if (!self || ec || !self->session) return;
        self->SendAck();
        self->rate.Add(self->follow.received());  // sampled here, not per chunk
        self->WatchReplay();
        self->AckTick();
      });
    }

    // Says once when the replayer stands still although the log goes further (a replay
    // that hangs); the primary drops a backup whose replay holds it up for too long.
    uint64_t watched_icount = 0;
    Clock::time_point watched_since{};
    bool stall_reported = false;
    void WatchReplay() {
      if (!feeder) return;
      const auto& st = feeder->stats();
      auto now = Clock::now();
      // Not before the replayer runs (a start from a snapshot takes a second or two).
      if (!replayer_running || st.replayed_icount != watched_icount ||
          st.received_icount <= st.replayed_icount + 1) {
        watched_icount = st.replayed_icount;
        watched_since = now;
        stall_reported = false;
        return;
      }
      if (stall_reported || now - watched_since < kReplayStallWarning) return;
      stall_reported = true;
      vlog.warn(
          "replay stands still at icount {} for {} s although the log reaches "
          "icount {} (break at {}, {} breaks, {} stops, {} of {} bytes fed)",
          st.replayed_icount,
          std::chrono::duration_cast<std::chrono::seconds>(kReplayStallWarning).count(),
          st.received_icount, st.break_icount, st.breaks_set, st.stops, st.fed_bytes,
          st.received_bytes);
    }

    // Planned failover: the primary stopped its vCPU and everything it logged is here; its
    // channel closes next, and this copy goes live without waiting for a heartbeat timeout.
    Status AcceptHandover(uint64_t log_end) {
      return follow.AcceptHandover(log_end, session != nullptr);
    }
    std::unique_ptr<BackgroundDigest> digest_job;
    bool replicas_hashed = false;  // identity.replica_digest is known

    // The primary's channel closed: BackupFollow says what it means (a lost primary goes to
    // the authority); while the claim is made, the replay runs to the end of what arrived.
    void OnSessionClosed(Status why) {
      session.reset();
      ack_timer.cancel();
      if (follow.OnChannelClosed(why) == BackupFollow::AfterClose::kCatchUp) WatchCatchUp();
    }

    // The epoch this copy runs in and the log it has received, for vlog's lines.
    VmLogPosition LogPosition() const {
      VmLogPosition at;
      if (failover && failover->epoch()) at.epoch = failover->epoch();
      at.log_offset = follow.received();
      return at;
    }

    // ---- failover: catch up, go live (or halt)
    void WatchCatchUp() {
      if (follow.CheckCaughtUp()) return;
      catch_up_timer.expires_after(kCatchUpPoll);
      catch_up_timer.async_wait([weak = weak_from_this()](const std::error_code& ec) {
        if (auto self = weak.lock(); self && !ec) self->WatchCatchUp();
      });
    }

    // The authority won the next epoch for this copy: GoLive runs the steps in order.
    void OnClaimWon(uint64_t epoch) {
      if (stopping) return;
      follow.GoingLive(epoch);
      Status ready = Status::Ok();
      if (!replayer_started || !feeder || runner.state() != VmState::kRunning) {
        ready = FailedPrecondition(
            "the replayer is not running (no complete log span arrived before the primary "
            "was lost)");
      }
      go_live.Run(epoch, ready);
    }

    // Going live, step 4: the replayed guest's NIC closes (it never sends), QEMU quits.
    void StopReplayer(std::function<void()> done) {
      live_guest_ipv4 = nic ? nic->guest_ipv4() : std::nullopt;
      if (nic) nic->Close();
      nic.reset();
      runner.Stop([weak = weak_from_this(), done = std::move(done)] {
        if (weak.lock()) done();
      });
    }
    std::optional<uint32_t> live_guest_ipv4;  // learnt by the replayer's NIC

    // Going live, step 5: a recording QEMU from the snapshot (MakeLivePrimaryVm).
    void StartSuccessor(std::function<void(Status)> done) {
      feeder.reset();
      std::error_code ec;
      if (!fifo_path.empty()) fs::remove(fifo_path, ec);
      LiveStart live;
      live.snapshot = replay::kGoLiveSnapshot;
      if (loadvm_without_ram) live.guest_ram = std::move(guest_ram);
      live.guest_ipv4 = live_guest_ipv4;
      live.why = fmt::format("live in epoch {} after {}", failover->epoch() + 1, follow.note());
      live.on_started = [weak = weak_from_this(), done](Status s) {
        if (weak.lock()) done(s);
      };
      successor = MakeLivePrimaryVm(io, node, spec, std::move(live));
      if (Status s = successor->Start(); !s.ok()) done(s);
    }

    // The live copy runs and the authority knows it.
    void OnLive() {
      // If FT was turned on at run time, this host's record said "backup": it is the
      // primary now, and a restarted ftd must run it as such.
      if (Status promoted = PromoteEnabledVm(node, spec.name); !promoted.ok()) {
        vlog.error("{}", promoted.ToString());
      }
      follow.Live(failover->note());
      vlog.warn("LIVE on this host: {}", follow.note());
    }

    // Lost the claim (or going live failed): this copy stops for good.
    void Halt(const std::string& why) {
      follow.Halted(why);
      catch_up_timer.cancel();
      ack_timer.cancel();
      if (session) {
        session->Close();
        session.reset();
      }
      if (successor) {
        successor->Stop([] {});
        return;
      }
      runner.Stop([] {});
    }

    // The replayer exited on its own: normal once END was fed (the log ran out).
    void OnReplayerEnded(const std::string& why) {
      if (follow.ReplayerEnded(why)) CloseChannel();
    }

    void Fail(const std::string& why) {
      if (follow.Fail(why)) CloseChannel();
    }

    void CloseChannel() {
      if (session) {
        session->Close();
        session.reset();
      }
      ack_timer.cancel();
    }

    void Stop(std::function<void()> done) {
      stopping = true;
      go_live.Cancel();  // a go-live under way goes no further
      failover->Stopping();
      if (session) {
        session->Close();
        session.reset();
      }
      ack_timer.cancel();
      catch_up_timer.cancel();
      std::weak_ptr<Impl> weak = shared_from_this();
      if (successor) {
        successor->Stop([weak, done = std::move(done)] {
          if (auto self = weak.lock()) self->Shutdown();
          done();
        });
        return;
      }
      runner.Stop([weak, done = std::move(done)] {
        if (auto self = weak.lock()) self->Shutdown();
        done();
      });
    }

    void Shutdown() {
      digest_job.reset();
      ack_timer.cancel();
      catch_up_timer.cancel();
      if (receipts) {
        std::fclose(receipts);
        receipts = nullptr;
      }
      if (session) {
        session->Close();
        session.reset();
      }
      feeder.reset();
      if (nic) nic->Close();
      nic.reset();
      std::error_code ec;
      if (!fifo_path.empty()) fs::remove(fifo_path, ec);
      fs::remove(runner.paths().vm_state_drive, ec);
      fs::remove(runner.paths().run_dir, ec);  // only if empty
    }

    VmReport Report() const {
      VmReport r;
      if (successor) {
        r = successor->Report();
        if (failover) failover->FillReport(r);
        return r;
      }
      FillRunnerReport(runner, "replay", r);
      if (!replayer_started) r.state = VmState::kWaiting;
      r.role = FtRole::kBackup;
      r.ft_state = ReportedState(follow.state());
      r.ft_note = follow.note();
      if (auto a = failover->state();
          a == arbiter::FtState::kCheckingStore || a == arbiter::FtState::kStale) {
        r.ft_state = ReportedFtState(a);  // not running: the store decides
        r.ft_note = failover->note();
      }
      r.epoch = failover->epoch();
      r.peer = follow.peer_node();
      r.log_bytes = follow.received();
      r.log_bytes_per_sec = rate.PerSecond();
      if (feeder) {
        const auto& st = feeder->stats();
        r.log_icount = st.received_icount;
        r.replayed_icount = st.replayed_icount;
        r.lag_instructions = st.lag_instructions();
        r.lag_ms = GuestMs(r.lag_instructions, spec.icount_shift);
      }
      r.last_ack_ms_ago = MsSince(last_ack_sent);
      r.channel_rtt_us = session ? session->stats().last_rtt_us : 0;
      if (nic) r.nic = nic->stats();
      if (failover) failover->FillReport(r);
      return r;
    }
  };

  std::shared_ptr<Impl> impl_;
};

}  // namespace

std::unique_ptr<ManagedVm> MakeBackupVm(asio::io_context& io, const NodeConfig& node,
                                        const domain::VmSpec& spec,
                                        std::optional<BackupFromSnapshot> from) {
  return std::make_unique<BackupVm>(io, node, spec, std::move(from));
}

}  // namespace ft::daemon
