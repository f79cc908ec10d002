#include "reprotection.h"

#include <unistd.h>

#include <asio.hpp>
#include <filesystem>

#include <fmt/format.h>

#include "ft/daemon/vm_runner.h"
#include "ft/disk/image_digest.h"
#include "ft/log.h"
#include "ft/proto/peer.pb.h"
#include "ft/replay/vm_state_drive.h"
#include "peer_link.h"
#include "replica_transfer.h"
#include "roles.h"

namespace ft::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using proto::PeerResponse;

constexpr auto kPeerCallTimeout = 10s;
// The peer's answer to Protect comes after it hashed the received disks.
constexpr auto kProtectTimeout = 120s;
constexpr auto kProtectedPoll = 100ms;
// From the peer's backup running to the handshake and the first ack.
constexpr auto kConnectTimeout = 60s;
// From the pause to the continuing QEMU answering (loadvm and a savevm of the guest's RAM).
constexpr auto kContinueTimeout = 60s;

// The replica id the VM-state drive travels under (ReplicaPath on the peer).
constexpr const char* kVmStateReplica = "ft-vmstate";

// What goes to the peer: the VM-state drive and each disk at kBaseSnapshot, as files in
// `dir`; `disks` names the disks alone (their digest is the handshake's).
struct Shipment {
  domain::VmSpec files;  // the disks, then the VM-state drive as replica kVmStateReplica
  std::string digest;
  uint64_t total_bytes = 0;
};

// Runs on a worker thread: copies and exports take seconds for big disks.
Result<Shipment> PrepareShipment(const domain::VmSpec& spec, const std::string& vm_state_drive,
                                 const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) {
    return Unavailable(fmt::format("cannot create the re-protection staging directory '{}': {}",
                                   dir, ec.message()));
  }
  Shipment out;
  out.files = spec;
  for (auto& d : out.files.disks) {
    std::string exported = dir + "/disk-" + d.id + ".qcow2";
    FT_RETURN_IF_ERROR(replay::ExportDiskSnapshot(d.path, replay::kBaseSnapshot, exported));
    d.path = exported;
    d.format = "qcow2";
  }
  FT_ASSIGN_OR_RETURN(out.digest, disk::ReplicaSetDigest(out.files));
  std::string drive_copy = dir + "/vm-state.qcow2";
  fs::copy_file(vm_state_drive, drive_copy, fs::copy_options::overwrite_existing, ec);
  if (ec) {
    return Unavailable(fmt::format("cannot copy the VM-state drive '{}' to '{}': {}",
                                   vm_state_drive, drive_copy, ec.message()));
  }
  out.files.disks.push_back({kVmStateReplica, drive_copy, "qcow2", domain::DiskBus::kVirtio});
  for (const auto& d : out.files.disks) {
    auto size = fs::file_size(d.path, ec);
    if (!ec) out.total_bytes += size;
  }
  return out;
}

}  // namespace

struct Reprotection::Impl : std::enable_shared_from_this<Impl> {
  Impl(ReprotectHost h, std::string name, std::string why, std::function<void(Status)> d)
      : host(std::move(h)),
        vm(std::move(name)),
        source(std::move(why)),
        done(std::move(d)),
        timer(*host.io),
        log(Logger("ops")) {}

  ReprotectHost host;
  std::string vm, source;
  std::function<void(Status)> done;
  asio::steady_timer timer;
  std::shared_ptr<spdlog::logger> log;
  ReprotectReport report;
  Clock::time_point started, pause_started, deadline;
  domain::VmSpec spec;
  ReprotectPoint point;
  std::string keep_drive;  // a second name of the saved drive until the VM runs on
  std::string staging;
  Shipment shipment;
  std::unique_ptr<BackgroundWork> work;
  bool continued = false;  // the new primary runs: failures from here on leave it unprotected
  bool alone = false;      // ContinueAlone started
  bool finished = false;

  const NodeConfig& node() const { return *host.node; }

  void Begin() {
    started = Clock::now();
    ManagedVm* copy = host.find(vm);
    if (!copy) return Fail(NotFound(fmt::format("no VM named '{}' on node '{}'", vm, node().name)));
    spec = copy->spec();
    SetPhase("preparing-peer");
    log->info("vm '{}': re-protecting ({}): asking the peer at {}:{} to drop any copy it has", vm,
              source, node().channel.peer_host, node().channel.peer_port);
    proto::PeerRequest ask;
    ask.mutable_unprotect()->set_vm(vm);
    ask.mutable_unprotect()->set_why(
        fmt::format("re-protection from '{}': that host becomes the backup", node().name));
    host.ask_peer(ask, kPeerCallTimeout, [weak = weak_from_this()](Result<PeerResponse> r) {
      if (auto self = weak.lock()) self->OnPeerCleared(std::move(r));
    });
  }

  void SetPhase(const std::string& phase) { report.phase = phase; }

  void OnPeerCleared(Result<PeerResponse> r) {
    if (!r.ok()) return Fail(r.status().WithContext("the peer ftd"));
    if (r->code() != PeerResponse::OK && r->code() != PeerResponse::UNKNOWN_VM) {
      return Fail(FailedPrecondition(
          fmt::format("peer '{}' keeps its copy of '{}': {}", r->node(), vm, r->error())));
    }
    ManagedVm* copy = host.find(vm);
    if (!copy) return Fail(Aborted(fmt::format("vm '{}' is gone from node '{}'", vm, node().name)));
    SetPhase("saving");
    pause_started = Clock::now();
    copy->SaveForReprotect([weak = weak_from_this()](Result<ReprotectPoint> p) {
      if (auto self = weak.lock()) self->OnSaved(std::move(p));
    });
  }

  void OnSaved(Result<ReprotectPoint> saved) {
    if (!saved.ok()) return Fail(saved.status());  // the VM runs on as before
    point = std::move(saved).value();
    // A second name keeps the snapshot if the next copy fails and its cleanup removes it.
    keep_drive = point.saved_drive + ".keep";
    ::unlink(keep_drive.c_str());
    if (::link(point.saved_drive.c_str(), keep_drive.c_str()) != 0) keep_drive.clear();
    host.replace(nullptr, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->StartNextCopy();
    });
  }

  // The saved copy is gone from the list: the next one takes its place and runs from the
  // snapshot. The guest pauses from `stop` until this QEMU answers.
  void StartNextCopy() {
    if (host.stopping()) return Fail(Aborted("ftd is stopping"));
    std::string drive = PathsFor(node(), vm).vm_state_drive;
    if (::rename(point.saved_drive.c_str(), drive.c_str()) != 0) {
      return ContinueAlone(
          ErrnoStatus(fmt::format("moving the saved VM-state drive '{}' back to '{}'",
                                  point.saved_drive, drive),
                      errno));
    }
    ReprotectStart start;
    start.guest_ipv4 = point.guest_ipv4;
    start.on_started = [weak = weak_from_this()](Status s) {
      if (auto self = weak.lock()) self->OnContinued(s);
    };
    auto next = MakeReprotectingPrimaryVm(*host.io, node(), spec, std::move(start));
    ManagedVm* copy = next.get();
    host.replace(std::move(next), [] {});
    // The VM must not stay down: a copy that neither runs nor fails in time is replaced.
    timer.expires_after(kContinueTimeout);
    timer.async_wait([weak = weak_from_this()](const std::error_code& ec) {
      auto self = weak.lock();
      if (!self || ec || self->continued || self->finished) return;
      self->ContinueAlone(Timeout(
          fmt::format("the VM did not run from its snapshot within {} s",
                      std::chrono::duration_cast<std::chrono::seconds>(kContinueTimeout).count())));
    });
    if (Status s = copy->Start(); !s.ok()) ContinueAlone(s);
  }

  void OnContinued(Status s) {
    if (continued || finished) return;
    timer.cancel();
    if (!s.ok()) return ContinueAlone(s);
    continued = true;
    report.pause_ms = MsBetween(pause_started, Clock::now());
    log->info(
        "vm '{}': re-protection: the VM runs on after a {} ms pause; shipping its "
        "starting point to the peer",
        vm, report.pause_ms);
    SetPhase("shipping");
    staging = PathsFor(node(), vm).state_dir + "/reprotect-out";
    std::string drive = PathsFor(node(), vm).vm_state_drive;
    std::weak_ptr<Impl> weak = weak_from_this();
    work = RunInBackground<Result<Shipment>>(
        *host.io, [spec = spec, drive, dir = staging] { return PrepareShipment(spec, drive, dir); },
        [weak](Result<Shipment> r) {
          if (auto self = weak.lock()) self->OnPrepared(std::move(r));
        });
  }

  // The new copy could not run from the snapshot: the VM must not stay down. It runs alone
  // from the same snapshot (no log, no backup), as a copy that went live does.
  void ContinueAlone(const Status& why) {
    if (finished || alone) return;
    alone = true;
    if (host.stopping()) return Fail(why);
    log->error(
        "vm '{}': re-protection: the VM could not continue from its snapshot: {}; "
        "starting it alone from the snapshot",
        vm, why.ToString());
    std::string drive = PathsFor(node(), vm).vm_state_drive;
    host.replace(nullptr, [weak = weak_from_this(), why, drive] {
      auto self = weak.lock();
      if (!self) return;
      if (!self->keep_drive.empty()) {
        ::rename(self->keep_drive.c_str(), drive.c_str());
        self->keep_drive.clear();
      }
      LiveStart live;
      live.snapshot = replay::kReprotectSnapshot;
      live.guest_ipv4 = self->point.guest_ipv4;
      live.why = "re-protection failed: " + why.message();
      auto next = MakeLivePrimaryVm(*self->host.io, self->node(), self->spec, std::move(live));
      ManagedVm* copy = next.get();
      self->host.replace(std::move(next), [] {});
      if (Status s = copy->Start(); !s.ok()) {
        self->log->error("vm '{}': it could not start from its snapshot either: {}", self->vm,
                         s.ToString());
      }
      self->Fail(why);
    });
  }

  void OnPrepared(Result<Shipment> r) {
    work.reset();
    if (host.stopping()) return FailAfterContinue(Aborted("ftd is stopping"));
    if (!r.ok()) return FailAfterContinue(r.status().WithContext("preparing the snapshot"));
    shipment = std::move(r).value();
    report.bytes_total = shipment.total_bytes;
    std::weak_ptr<Impl> weak = weak_from_this();
    PeerConversation::Open(*host.io, node(), kPeerCallTimeout,
                           [weak](Result<std::shared_ptr<PeerConversation>> opened) {
                             auto self = weak.lock();
                             if (!self) return;
                             if (!opened.ok()) return self->FailAfterContinue(opened.status());
                             auto conversation = std::move(opened).value();
                             SendReplicas(
                                 *self->host.io, conversation, self->node(), self->shipment.files,
                                 [weak, conversation](Status sent) {
                                   conversation->Close();
                                   if (auto me = weak.lock()) me->OnShipped(sent);
                                 },
                                 [weak](uint64_t bytes) {
                                   if (auto me = weak.lock()) me->report.bytes_sent = bytes;
                                 });
                           });
  }

  void OnShipped(const Status& sent) {
    if (!sent.ok()) return FailAfterContinue(sent.WithContext("shipping the snapshot"));
    report.bytes_sent = report.bytes_total;
    ManagedVm* copy = host.find(vm);
    if (!copy)
      return FailAfterContinue(
          Aborted(fmt::format("vm '{}' is gone from node '{}'", vm, node().name)));
    SetPhase("starting-backup");
    proto::PeerRequest ask;
    auto* protect = ask.mutable_protect();
    protect->set_vm_config(FormatVmSection(spec));
    protect->set_epoch(copy->Report().epoch);
    protect->set_source(source);
    protect->set_from_snapshot(replay::kBaseSnapshot);
    protect->set_replica_digest(shipment.digest);
    host.ask_peer(ask, kProtectTimeout, [weak = weak_from_this()](Result<PeerResponse> r) {
      if (auto self = weak.lock()) self->OnBackupStarted(std::move(r));
    });
  }

  void OnBackupStarted(Result<PeerResponse> r) {
    if (!r.ok()) return FailAfterContinue(r.status().WithContext("starting the backup"));
    if (r->code() != PeerResponse::OK) {
      return FailAfterContinue(FailedPrecondition(
          fmt::format("peer '{}' refused to run the backup: {}", r->node(), r->error())));
    }
    RemoveStaging();
    ManagedVm* copy = host.find(vm);
    if (!copy)
      return FailAfterContinue(
          Aborted(fmt::format("vm '{}' is gone from node '{}'", vm, node().name)));
    SetPhase("connecting");
    if (Status s = copy->BeginProtection(shipment.digest); !s.ok()) return FailAfterContinue(s);
    deadline = Clock::now() + kConnectTimeout;
    WaitProtected();
  }

  void WaitProtected() {
    ManagedVm* copy = host.find(vm);
    if (!copy)
      return FailAfterContinue(
          Aborted(fmt::format("vm '{}' is gone from node '{}'", vm, node().name)));
    VmReport r = copy->Report();
    if (r.ft_state == VmFtState::kProtected) return Succeed();
    if (r.ft_state != VmFtState::kWaitingForBackup) {
      return FailAfterContinue(FailedPrecondition(
          fmt::format("the primary is {} instead of protected{}", VmFtStateName(r.ft_state),
                      r.ft_note.empty() ? "" : " (" + r.ft_note + ")")));
    }
    if (Clock::now() > deadline) {
      return FailAfterContinue(Timeout(
          fmt::format("the new backup did not connect within {} s{}",
                      std::chrono::duration_cast<std::chrono::seconds>(kConnectTimeout).count(),
                      r.ft_note.empty() ? "" : " (" + r.ft_note + ")")));
    }
    timer.expires_after(kProtectedPoll);
    timer.async_wait([weak = weak_from_this()](const std::error_code& ec) {
      if (auto self = weak.lock(); self && !ec) self->WaitProtected();
    });
  }

  void Succeed() {
    report.elapsed_ms = MsBetween(started, Clock::now());
    SetPhase("protected");
    log->info("vm '{}': PROTECTED again ({}): paused {} ms, {} bytes shipped, {} ms in all", vm,
              source, report.pause_ms, report.bytes_total, report.elapsed_ms);
    Finish(Status::Ok());
  }

  // The new primary runs: it goes on unprotected, and the peer drops what it received.
  void FailAfterContinue(const Status& why) {
    if (ManagedVm* copy = host.find(vm)) copy->AbandonProtection(why.message());
    proto::PeerRequest undo;
    undo.mutable_unprotect()->set_vm(vm);
    undo.mutable_unprotect()->set_why("re-protection failed on '" + node().name + "'");
    host.ask_peer(undo, kPeerCallTimeout, [](Result<PeerResponse>) {});
    Fail(why);
  }

  void Fail(const Status& why) {
    if (finished) return;
    report.elapsed_ms = MsBetween(started, Clock::now());
    report.note = why.message();
    std::string phase = report.phase;
    SetPhase("failed");
    log->warn("vm '{}': re-protection failed while {}: {}{}", vm, phase, why.ToString(),
              continued ? "; the VM runs on unprotected" : "");
    Finish(why);
  }

  void Finish(const Status& outcome) {
    finished = true;
    timer.cancel();
    work.reset();
    RemoveStaging();
    if (!keep_drive.empty()) ::unlink(keep_drive.c_str());
    keep_drive.clear();
    if (auto cb = std::move(done)) {
      done = nullptr;
      cb(outcome);
    }
  }

  void RemoveStaging() {
    if (staging.empty()) return;
    std::error_code ec;
    fs::remove_all(staging, ec);
  }
};

std::shared_ptr<Reprotection> Reprotection::Start(ReprotectHost host, std::string vm,
                                                  std::string source,
                                                  std::function<void(Status)> done) {
  auto impl =
      std::make_shared<Impl>(std::move(host), std::move(vm), std::move(source), std::move(done));
  std::shared_ptr<Reprotection> r(new Reprotection(impl));
  impl->Begin();
  return r;
}

Reprotection::Reprotection(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Reprotection::~Reprotection() {
  impl_->timer.cancel();
  impl_->work.reset();
}

bool Reprotection::finished() const { return impl_->finished; }

ReprotectReport Reprotection::report() const {
  ReprotectReport r = impl_->report;
  if (!impl_->finished) r.elapsed_ms = MsBetween(impl_->started, Clock::now());
  return r;
}

}  // namespace ft::daemon
