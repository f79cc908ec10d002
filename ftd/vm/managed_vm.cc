#include "ft/daemon/managed_vm.h"

#include <asio.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "ft/disk/image_digest.h"
#include "ft/replay/rr_stream.h"
#include "roles.h"
#include "vm_records.h"

namespace ft::daemon {
namespace {

namespace fs = std::filesystem;

// An unprotected VM: plain QEMU, no log.
class PlainVm : public ManagedVm {
 public:
  PlainVm(asio::io_context& io, const NodeConfig& node, const domain::VmSpec& spec)
      : io_(io), spec_(spec), runner_(io, node, spec) {}
  ~PlainVm() override { CloseNic(); }
  const std::string& name() const override { return runner_.name(); }
  const domain::VmSpec& spec() const override { return spec_; }
  FtRole role() const override { return FtRole::kOff; }
  Status Start() override {
    FT_ASSIGN_OR_RETURN(nic_, ServeNic(io_, runner_, spec_, net::Outbound::kOpen));
    Status s = runner_.Start();
    if (!s.ok()) CloseNic();
    return s;
  }
  void Stop(std::function<void()> done) override {
    runner_.Stop([this, done = std::move(done)] {
      CloseNic();
      done();
    });
  }
  void OnChildSignal() override { runner_.OnChildSignal(); }
  VmReport Report() const override {
    VmReport r;
    FillRunnerReport(runner_, "plain", r);
    r.role = FtRole::kOff;
    r.ft_state = VmFtState::kOff;
    if (nic_) r.nic = nic_->stats();
    return r;
  }

 private:
  void CloseNic() {
    if (!nic_) return;
    nic_->Close();
    nic_.reset();
    std::error_code ec;
    fs::remove(runner_.paths().run_dir, ec);  // only if empty
  }

  asio::io_context& io_;
  domain::VmSpec spec_;
  VmRunner runner_;
  std::shared_ptr<net::GuestNic> nic_;
};

// The VM's epoch on this host; a VM never protected here starts in epoch 1, recorded now.
Result<uint64_t> LoadEpoch(const NodeConfig& node, const std::string& vm) {
  FT_ASSIGN_OR_RETURN(uint64_t epoch, ReadEpochRecord(node, vm));
  if (epoch != 0) return epoch;
  FT_RETURN_IF_ERROR(WriteEpochRecord(node, vm, 1));
  return uint64_t{1};
}

}  // namespace

Status SaveEpoch(const NodeConfig& node, const std::string& vm, uint64_t epoch) {
  return WriteEpochRecord(node, vm, epoch);
}

Result<channel::Identity> ManagedVm::ExpectPrimary() {
  return FailedPrecondition(
      fmt::format("vm '{}' is not a backup on this node (ft = {})", name(), FtRoleName(role())));
}
void ManagedVm::AdoptSession(std::shared_ptr<channel::Session> session) { session->Close(); }

namespace {
Status NotInRole(const ManagedVm& vm, const char* what, const char* needs) {
  return FailedPrecondition(fmt::format(
      "vm '{}' is {} on this node: {} needs {}", vm.name(),
      vm.role() == FtRole::kOff ? "not protected" : FtRoleName(vm.role()), what, needs));
}
}  // namespace

Status ManagedVm::TurnFtOff(const std::string&) {
  return NotInRole(*this, "turning FT off", "the primary's host");
}
void ManagedVm::DrainForHandover(std::chrono::milliseconds,
                                 std::function<void(Result<uint64_t>)> done) {
  done(NotInRole(*this, "a planned failover", "the primary's host"));
}
Status ManagedVm::CompleteHandover(const std::string&) {
  return NotInRole(*this, "a planned failover", "the primary's host");
}
void ManagedVm::AbortHandover(const std::string&) {}
Status ManagedVm::PlayDead() { return NotInRole(*this, "a drill", "the primary's host"); }
Status ManagedVm::AcceptHandover(uint64_t) {
  return NotInRole(*this, "taking over", "the backup's host");
}
void ManagedVm::SaveForReprotect(std::function<void(Result<ReprotectPoint>)> done) {
  done(NotInRole(*this, "re-protection", "a copy that runs unprotected"));
}
Status ManagedVm::BeginProtection(const std::string&) {
  return NotInRole(*this, "connecting a new backup", "a primary started for re-protection");
}
void ManagedVm::AbandonProtection(const std::string&) {}

std::unique_ptr<ManagedVm> MakeManagedVm(asio::io_context& io, const NodeConfig& node,
                                         const domain::VmSpec& spec, FtRole role) {
  switch (role) {
    case FtRole::kPrimary:
      return MakePrimaryVm(io, node, spec);
    case FtRole::kBackup:
      return MakeBackupVm(io, node, spec);
    case FtRole::kOff:
      break;
  }
  return MakePlainVm(io, node, spec);
}

std::unique_ptr<ManagedVm> MakePlainVm(asio::io_context& io, const NodeConfig& node,
                                       const domain::VmSpec& spec) {
  return std::make_unique<PlainVm>(io, node, spec);
}

namespace {
// The rr log version per QEMU binary, for the daemon's life (event loop thread only).
std::map<std::string, uint32_t>& RrVersions() {
  static std::map<std::string, uint32_t> versions;
  return versions;
}
}  // namespace

Result<uint32_t> RrVersionOf(const NodeConfig& node, const std::string& qemu_binary) {
  auto& versions = RrVersions();
  auto it = versions.find(qemu_binary);
  if (it != versions.end()) return it->second;
  std::error_code ec;
  fs::create_directories(node.run_dir, ec);
  FT_ASSIGN_OR_RETURN(uint32_t v,
                      replay::ProbeRrVersion(qemu_binary, node.run_dir, std::chrono::seconds(20)));
  return versions.emplace(qemu_binary, v).first->second;
}

Result<channel::Identity> LocalIdentity(const NodeConfig& node, const domain::VmSpec& spec,
                                        bool digest_replicas) {
  channel::Identity id;
  id.node = node.name;
  id.vm = spec.name;
  FT_ASSIGN_OR_RETURN(id.config_digest, domain::ReplicatedSpecDigest(spec));
  FT_ASSIGN_OR_RETURN(id.rr_version, RrVersionOf(node, spec.qemu_binary));
  FT_ASSIGN_OR_RETURN(id.epoch, LoadEpoch(node, spec.name));
  id.failover = !node.shared_storage.empty();
  // store_id: filled by the role from the claim store read at start
  if (digest_replicas) {
    FT_ASSIGN_OR_RETURN(id.replica_digest, disk::ReplicaSetDigest(spec));
  }
  return id;
}

struct BackgroundWork::Slot {
  std::mutex mu;
  asio::io_context* io = nullptr;  // null once the owner is gone
};

BackgroundWork::BackgroundWork(asio::io_context& io, std::function<std::function<void()>()> work)
    : slot_(std::make_shared<Slot>()) {
  slot_->io = &io;
  std::thread([slot = slot_, work = std::move(work)] {
    std::function<void()> deliver = work();
    std::lock_guard lock(slot->mu);
    if (!slot->io) return;
    asio::post(*slot->io, [slot, deliver = std::move(deliver)] {
      {
        std::lock_guard inner(slot->mu);
        if (!slot->io) return;
      }
      deliver();
    });
  }).detach();
}

BackgroundWork::~BackgroundWork() {
  std::lock_guard lock(slot_->mu);
  slot_->io = nullptr;
}

BackgroundDigest::BackgroundDigest(asio::io_context& io, domain::VmSpec spec,
                                   std::function<void(Result<std::string>)> done)
    : work_(RunInBackground<Result<std::string>>(
          io, [spec = std::move(spec)] { return disk::ReplicaSetDigest(spec); }, std::move(done))) {
}

channel::Options ChannelOptionsFrom(const ChannelConfig& config) {
  channel::Options o;
  o.key = config.key;
  o.heartbeat_interval = std::chrono::milliseconds(config.heartbeat_interval_ms);
  o.heartbeat_timeout = std::chrono::milliseconds(config.heartbeat_timeout_ms);
  return o;
}

Result<std::shared_ptr<net::GuestNic>> ServeNic(asio::io_context& io, const VmRunner& runner,
                                                const domain::VmSpec& spec, net::Outbound outbound,
                                                std::function<Result<uint64_t>()> log_position,
                                                std::optional<uint32_t> guest_ipv4) {
  if (!spec.nic || spec.nic->backend != domain::NicBackend::kBridge) {
    return std::shared_ptr<net::GuestNic>();
  }
  std::error_code ec;
  fs::create_directories(runner.paths().run_dir, ec);
  net::GuestNicOptions o;
  o.vm = spec.name;
  o.socket_path = runner.paths().nic_socket;
  if (outbound != net::Outbound::kDrop) o.bridge = spec.nic->bridge;
  o.outbound = outbound;
  o.log_position = std::move(log_position);
  o.mac = spec.nic->mac;
  o.guest_ipv4 = guest_ipv4;
  if (const char* trace = getenv("FTD_TRACE_GATE"); trace && *trace) o.trace_path = trace;
  return net::GuestNic::Create(io, std::move(o));
}

void FillRunnerReport(const VmRunner& runner, const char* mode, VmReport& r) {
  r.name = runner.name();
  r.state = runner.state();
  r.mode = mode;
  r.qemu_pid = runner.qemu_pid();
  r.uptime_ms = static_cast<uint64_t>(runner.uptime().count());
  r.console_log = runner.paths().console_log;
  r.monitor_socket = runner.qemu_pid() ? runner.paths().monitor_socket : "";
  r.last_error = runner.last_error();
}

void RateMeter::Add(uint64_t total_bytes) {
  auto now = std::chrono::steady_clock::now();
  samples_.emplace_back(now, total_bytes);
  while (samples_.size() > 2 && now - samples_.front().first > std::chrono::seconds(5)) {
    samples_.pop_front();
  }
}

double RateMeter::PerSecond() const {
  if (samples_.size() < 2) return 0;
  auto span = std::chrono::duration<double>(samples_.back().first - samples_.front().first).count();
  if (span <= 0) return 0;
  return static_cast<double>(samples_.back().second - samples_.front().second) / span;
}

}  // namespace ft::daemon
