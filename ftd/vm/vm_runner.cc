#include "ft/daemon/vm_runner.h"

#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <asio.hpp>
#include <filesystem>
#include <fstream>
#include <optional>

#include <fmt/format.h>

#include "ft/disk/image_use.h"
#include "ft/log.h"
#include "ft/replay/guest_ram.h"
#include "ft/replay/process.h"
#include "ft/replay/qemu_command.h"
#include "ft/replay/qmp_client.h"
#include "ft/replay/vm_state_drive.h"
#include "roles.h"
#include "vm_log.h"

namespace ft::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kQmpConnectTimeout = 20s;
constexpr auto kQmpCommandTimeout = 5s;
constexpr auto kQuitGrace = 10s;
constexpr auto kTermGrace = 3s;

Status MakeDir(const std::string& path, fs::perms perms) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec)
    return Status(StatusCode::kPermissionDenied,
                  fmt::format("cannot create '{}': {}", path, ec.message()));
  fs::permissions(path, perms, ec);
  return Status::Ok();
}

// A pid file left by an ftd that died: is its QEMU still alive?
bool PidIsQemu(pid_t pid) {
  std::ifstream comm(fmt::format("/proc/{}/comm", pid));
  std::string name;
  return comm && std::getline(comm, name) && name.rfind("qemu-system", 0) == 0;
}

}  // namespace

struct VmRunner::Impl : std::enable_shared_from_this<VmRunner::Impl> {
  Impl(asio::io_context& io_context, const NodeConfig& node, domain::VmSpec vm_spec)
      : io(io_context),
        spec(std::move(vm_spec)),
        paths(PathsFor(node, spec.name)),
        log(Logger("replay")),
        vlog(log, spec.name),
        poll_timer(io_context) {}

  asio::io_context& io;
  domain::VmSpec spec;
  VmPaths paths;
  std::shared_ptr<spdlog::logger> log;
  VmLog vlog;  // "vm 'web1': " on every line (the role's lines add the epoch and log offset)
  std::unique_ptr<replay::ChildProcess> qemu;
  std::shared_ptr<replay::QmpClient> qmp;
  asio::steady_timer poll_timer;
  VmState state = VmState::kStarting;
  std::vector<std::function<void()>> on_stopped;  // every Stop() caller, told once
  std::chrono::steady_clock::time_point spawned_at;
  std::string last_error;

  RunOptions run;
  std::function<void()> on_running;
  std::function<void(const std::string&)> on_failed;
  std::optional<std::string> expected_exit;  // why QEMU will end by itself, once told

  Status Start(RunOptions run_options) {
    run = std::move(run_options);
    FT_RETURN_IF_ERROR(MakeDir(
        paths.state_dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec));
    FT_RETURN_IF_ERROR(MakeDir(paths.run_dir, fs::perms::owner_all));
    if (paths.qmp_socket.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return InvalidArgument(fmt::format(
          "vm '{}': QMP socket path '{}' is longer than {} bytes; choose a shorter run_dir",
          spec.name, paths.qmp_socket, sizeof(sockaddr_un{}.sun_path) - 1));
    }
    FT_RETURN_IF_ERROR(ClearStaleRuntime());
    bool clean_snapshots =
        run.loadvm.empty() && run.rrsnapshot.empty() && run.mode != replay::RunMode::kPlain;
    for (const auto& disk : spec.disks) {
      // A second writer would corrupt the image (and QEMU would only say so in its log).
      FT_RETURN_IF_ERROR(disk::CheckImageNotInUse(spec.name, disk.id, disk.path));
    }
    bool vm_state_drive = run.vm_state_drive && run.mode != replay::RunMode::kPlain;
    bool any_qcow2 = std::any_of(spec.disks.begin(), spec.disks.end(),
                                 [](const auto& d) { return d.format == "qcow2"; });
    if (!(clean_snapshots && any_qcow2) && !(vm_state_drive && !FromSnapshot(run))) {
      // No qemu-img to run (a go-live or a re-protection starts from a snapshot: at once).
      if (vm_state_drive) FT_RETURN_IF_ERROR(PrepareVmStateDrive(spec, paths, run));
      return Spawn();
    }
    // qemu-img takes 20-150 ms a call on a busy host: on a worker, not the event loop that
    // carries every VM's heartbeats; QEMU is spawned back on the loop (PDEATHSIG follows the
    // spawning thread). A failure from here on is reported through OnFailed.
    std::weak_ptr<Impl> weak = shared_from_this();
    preparing = RunInBackground<Status>(
        io,
        [vm = spec, where = paths, options = run, clean_snapshots, vm_state_drive,
         logger = log]() -> Status {
          return Prepare(vm, where, options, clean_snapshots, vm_state_drive, logger);
        },
        [weak](Status prepared) {
          auto self = weak.lock();
          if (!self) return;
          self->preparing.reset();
          if (self->state != VmState::kStarting) return;  // stopped meanwhile
          if (prepared.ok()) prepared = self->Spawn();
          if (!prepared.ok()) {
            self->vlog.error("{}", prepared.ToString());
            self->Fail(prepared.message());
          }
        });
    return Status::Ok();
  }
  std::unique_ptr<BackgroundWork> preparing;

  // On a worker: old snapshots of an ft run out of the disks, and the VM-state drive.
  static Status Prepare(const domain::VmSpec& vm, const VmPaths& where, const RunOptions& options,
                        bool clean_snapshots, bool vm_state_drive,
                        const std::shared_ptr<spdlog::logger>& logger) {
    if (clean_snapshots) {
      for (const auto& disk : vm.disks) {
        if (disk.format != "qcow2") continue;
        Status cleaned = replay::DeleteStaleFtSnapshots(disk.path, where.run_dir + "/" + disk.id);
        if (!cleaned.ok()) logger->warn("vm '{}': {}", vm.name, cleaned.message());
      }
    }
    if (vm_state_drive) return PrepareVmStateDrive(vm, where, options);
    return Status::Ok();
  }

  Status Spawn() {
    replay::LaunchPaths launch{paths.qmp_socket,     paths.console_log, run.rr_file,
                               paths.monitor_socket, paths.nic_socket,  ""};
    replay::LaunchOptions launch_options;
    launch_options.mode = run.mode;
    launch_options.start_paused = run.start_paused;
    if (run.vm_state_drive && run.mode != replay::RunMode::kPlain) {
      launch.vm_state_drive = paths.vm_state_drive;
      launch_options.loadvm = run.loadvm;
      launch_options.rrsnapshot = run.rrsnapshot;
    }
    if (run.guest_ram && run.mode != replay::RunMode::kPlain) {
      launch.guest_ram = run.guest_ram->path_in_child();
      launch_options.loadvm_without_ram = run.loadvm_without_ram;
    }
    auto argv = replay::BuildQemuCommand(spec, launch_options, launch);
    {
      std::ofstream qlog(paths.qemu_log, std::ios::app);
      qlog << "---- ftd starting QEMU: " << replay::JoinCommandLine(argv) << "\n";
    }
    vlog.info("starting QEMU ({} mode, {} MiB, {} disk(s), nic {})", replay::RunModeName(run.mode),
              spec.memory_mib, spec.disks.size(),
              spec.nic ? domain::NicBackendName(spec.nic->backend) : "none");
    vlog.debug("{}", replay::JoinCommandLine(argv));
    replay::SpawnOptions options;
    options.output_path = paths.qemu_log;
    options.extra_env = run.extra_env;
    options.nice = 0;  // ftd runs above its VMs (RunDaemon); QEMU at the normal priority
    if (!launch.guest_ram.empty()) options.inherit_fds.push_back(run.guest_ram->fd());
    auto child = replay::ChildProcess::Spawn(argv, options);
    if (!child.ok()) {
      RemoveRuntime();
      return child.status().WithContext(fmt::format("vm '{}'", spec.name));
    }
    qemu = std::move(child).value();
    spawned_at = std::chrono::steady_clock::now();
    std::ofstream(paths.pid_file) << qemu->pid() << "\n";
    vlog.info("QEMU pid {}, console {}", qemu->pid(), paths.console_log);

    qmp = replay::QmpClient::Create(io, spec.name);
    std::weak_ptr<Impl> weak = shared_from_this();
    qmp->OnEvent([weak](const std::string& event, const replay::Json& data) {
      if (auto self = weak.lock()) self->OnQmpEvent(event, data);
    });
    qmp->Connect(paths.qmp_socket, kQmpConnectTimeout, [weak](Status s) {
      if (auto self = weak.lock()) self->OnQmpConnected(s);
    });
    return Status::Ok();
  }

  static bool FromSnapshot(const RunOptions& options) {
    return !options.loadvm.empty() ||
           (options.mode == replay::RunMode::kReplay && !options.rrsnapshot.empty());
  }

  static Status PrepareVmStateDrive(const domain::VmSpec& vm, const VmPaths& where,
                                    const RunOptions& options) {
    if (!FromSnapshot(options)) {
      return replay::CreateVmStateDrive(where.vm_state_drive)
          .WithContext(fmt::format("vm '{}'", vm.name));
    }
    if (access(where.vm_state_drive.c_str(), R_OK | W_OK) != 0) {
      return ErrnoStatus(fmt::format("vm '{}': the VM-state drive '{}' with snapshot '{}' is "
                                     "not usable",
                                     vm.name, where.vm_state_drive,
                                     options.loadvm.empty() ? options.rrsnapshot : options.loadvm),
                         errno);
    }
    return Status::Ok();
  }

  // A previous ftd may have died (SIGKILL) and left its files; its QEMU died with it
  // (PDEATHSIG) unless something else is running the VM, which we must not touch.
  Status ClearStaleRuntime() {
    std::ifstream pid_in(paths.pid_file);
    pid_t old_pid = 0;
    if (pid_in >> old_pid && old_pid > 0 && PidIsQemu(old_pid)) {
      return FailedPrecondition(fmt::format(
          "vm '{}' is already running as QEMU pid {} (pid file {}); is another ftd running?",
          spec.name, old_pid, paths.pid_file));
    }
    std::error_code ec;
    fs::remove(paths.qmp_socket, ec);
    fs::remove(paths.monitor_socket, ec);
    fs::remove(paths.pid_file, ec);
    return Status::Ok();
  }

  // QEMU 7.2 as Debian ships it hangs in replay when a replayer is paused while a frame
  // waits in the NIC's queue (docs/design.md); scripts/build-qemu.sh builds it fixed.
  void WarnIfUnpatchedForReplay() {
    if (run.mode == replay::RunMode::kPlain) return;
    if (qmp->qemu_package().find("ftd-rr") != std::string::npos) return;
    vlog.warn(
        "QEMU {} ('{}', package '{}') lacks ftd's record/replay patches "
        "(replay/qemu-patches): its replay can hang for good; build the fixed QEMU with "
        "scripts/build-qemu.sh and set 'qemu =' on both hosts",
        qmp->qemu_version(), spec.qemu_binary, qmp->qemu_package());
  }

  void OnQmpConnected(Status s) {
    if (state != VmState::kStarting) return;
    if (!s.ok()) {
      vlog.error("QMP handshake failed: {}", s.ToString());
      Fail("QMP handshake failed: " + s.message());
      return;
    }
    WarnIfUnpatchedForReplay();
    auto self = shared_from_this();
    qmp->Execute("query-status", replay::Json::object(), kQmpCommandTimeout,
                 [self](Result<replay::Json> reply) {
                   if (self->state != VmState::kStarting) return;
                   if (!reply.ok()) {
                     self->vlog.error("query-status failed: {}", reply.status().ToString());
                     self->Fail("query-status failed: " + reply.status().message());
                     return;
                   }
                   self->state = VmState::kRunning;
                   auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - self->spawned_at)
                                 .count();
                   self->vlog.info("running (QMP status '{}', {} ms after spawn)",
                                   reply->value("status", "?"), ms);
                   if (self->on_running) self->on_running();
                 });
  }

  void OnQmpEvent(const std::string& event, const replay::Json& data) {
    if (event == "SHUTDOWN") {
      vlog.info("guest shutdown ({})", data.value("reason", "?"));
    } else if (event == "STOP" || event == "RESUME") {
      vlog.debug("QMP event {}", event);
    } else {
      vlog.debug("QMP event {} {}", event, data.dump());
    }
  }

  void OnChildSignal() {
    if (!qemu || !qemu->running()) return;
    auto exit = qemu->TryReap();
    if (!exit) return;
    if (state == VmState::kStopping) return;  // the stop sequence notices it itself
    if (expected_exit && exit->clean()) {
      vlog.info("QEMU pid {} {}: {}", qemu->pid(), exit->Describe(), *expected_exit);
      Stopped();  // as an ordered stop ends (no Stop() waits on it); OnFailed tells the owner
      if (on_failed) on_failed(fmt::format("QEMU {} ({})", exit->Describe(), *expected_exit));
      return;
    }
    std::string tail = replay::TailOfFile(paths.qemu_log, 600);
    vlog.error("QEMU pid {} {} unexpectedly; its last output:\n{}", qemu->pid(), exit->Describe(),
               tail.empty() ? "(none)" : tail);
    Fail(fmt::format("QEMU {} unexpectedly", exit->Describe()));
  }

  void Fail(const std::string& why) {
    bool first = state != VmState::kFailed;
    state = VmState::kFailed;
    if (last_error.empty()) last_error = why;
    if (first && on_failed) on_failed(why);
    if (qmp) qmp->Close();
    if (qemu && qemu->running()) {
      auto exit = qemu->Terminate(kTermGrace);
      vlog.warn("QEMU stopped after failure ({}): {}", why, exit.Describe());
    }
    RemoveRuntime();
  }

  void Stop(std::function<void()> done) {
    on_stopped.push_back(std::move(done));
    if (state == VmState::kStopping) return;  // already on its way: told with the first
    if (!qemu || !qemu->running() || state == VmState::kFailed) {
      if (state != VmState::kFailed) state = VmState::kStopped;
      RemoveRuntime();
      Finish();
      return;
    }
    state = VmState::kStopping;
    vlog.info("stopping QEMU pid {}", qemu->pid());
    auto deadline = std::chrono::steady_clock::now() + kQuitGrace;
    if (qmp && qmp->connected()) {
      auto self = shared_from_this();
      qmp->Execute("quit", replay::Json::object(), kQmpCommandTimeout,
                   [self](Result<replay::Json> reply) {
                     // QEMU may close the monitor before it answers 'quit': both are fine.
                     if (!reply.ok() && reply.status().code() != StatusCode::kAborted) {
                       self->vlog.warn("QMP quit: {}", reply.status().ToString());
                     }
                   });
    } else {
      qemu->Signal(SIGTERM);
    }
    PollExit(deadline);
  }

  void PollExit(std::chrono::steady_clock::time_point deadline) {
    if (auto exit = qemu->TryReap()) {
      vlog.info("QEMU {}", exit->Describe());
      Stopped();
      return;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      vlog.warn("QEMU did not quit within {} s; terminating",
                std::chrono::duration_cast<std::chrono::seconds>(kQuitGrace).count());
      auto exit = qemu->Terminate(kTermGrace);
      vlog.warn("QEMU {}", exit.Describe());
      Stopped();
      return;
    }
    poll_timer.expires_after(20ms);
    auto self = shared_from_this();
    poll_timer.async_wait([self, deadline](const std::error_code& ec) {
      if (!ec) self->PollExit(deadline);
    });
  }

  void Stopped() {
    state = VmState::kStopped;
    if (qmp) qmp->Close();
    RemoveRuntime();
    Finish();
  }

  void Finish() {
    auto waiting = std::move(on_stopped);
    on_stopped.clear();
    for (auto& done : waiting) {
      if (done) done();
    }
  }

  void RemoveRuntime() {
    std::error_code ec;
    fs::remove(paths.qmp_socket, ec);
    fs::remove(paths.monitor_socket, ec);
    fs::remove(paths.pid_file, ec);
    fs::remove(paths.run_dir, ec);  // only if empty: never delete what we did not make
  }
};

VmRunner::VmRunner(asio::io_context& io, const NodeConfig& node, domain::VmSpec spec)
    : impl_(std::make_shared<Impl>(io, node, std::move(spec))) {}

VmRunner::~VmRunner() {
  if (impl_->qmp) impl_->qmp->Close();
  impl_->poll_timer.cancel();
}

Status VmRunner::Start(RunOptions options) {
  Status s = impl_->Start(std::move(options));
  if (!s.ok()) {
    impl_->state = VmState::kFailed;
    impl_->last_error = s.message();
  }
  return s;
}
void VmRunner::OnRunning(std::function<void()> fn) { impl_->on_running = std::move(fn); }
void VmRunner::ExpectExit(std::string why) { impl_->expected_exit = std::move(why); }
void VmRunner::OnFailed(std::function<void(const std::string&)> fn) {
  impl_->on_failed = std::move(fn);
}
std::shared_ptr<replay::QmpClient> VmRunner::qmp() const { return impl_->qmp; }
void VmRunner::Stop(std::function<void()> done) { impl_->Stop(std::move(done)); }
void VmRunner::OnChildSignal() { impl_->OnChildSignal(); }
VmState VmRunner::state() const { return impl_->state; }
int VmRunner::qemu_pid() const {
  return impl_->qemu && impl_->qemu->running() ? impl_->qemu->pid() : 0;
}
std::chrono::milliseconds VmRunner::uptime() const {
  if (!qemu_pid()) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               impl_->spawned_at);
}
const std::string& VmRunner::last_error() const { return impl_->last_error; }
const std::string& VmRunner::name() const { return impl_->spec.name; }
const VmPaths& VmRunner::paths() const { return impl_->paths; }

}  // namespace ft::daemon
