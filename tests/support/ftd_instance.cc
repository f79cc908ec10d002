#include "ftd_instance.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "core_layout.h"
#include "guest_client.h"

namespace ft::testing {
namespace {
namespace fs = std::filesystem;
}

std::string FtdBinary() { return FT_FTD_BINARY; }

std::string GuestDir() {
  std::string dir = FT_GUEST_DIR;
  return fs::exists(dir + "/initrd.img") ? dir : "";
}

std::string GuestKernel() {
  // The build also leaves the same Debian kernel decompressed: booting it skips ~5 s of
  // xz decompression under TCG.
  std::string dir = FT_GUEST_DIR;
  return fs::exists(dir + "/vmlinux") ? dir + "/vmlinux" : dir + "/vmlinuz";
}

std::string QemuBinary() {
  if (const char* chosen = std::getenv("FT_TEST_QEMU"); chosen && *chosen) return chosen;
  std::string built = FT_QEMU_BINARY;
  return access(built.c_str(), X_OK) == 0 ? built : "qemu-system-x86_64";
}

std::string FtctlBinary() { return FT_FTCTL_BINARY; }

CommandOutput RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  CommandOutput result;
  char path[] = "/tmp/ftd-cmd-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return result;
  close(fd);
  replay::SpawnOptions options;
  options.output_path = path;
  auto child = replay::ChildProcess::Spawn(argv, options);
  if (child.ok()) {
    auto exit = (*child)->WaitFor(timeout);
    if (!exit) exit = (*child)->Terminate(std::chrono::milliseconds(100));
    result.exit_code = exit->signaled ? 128 + exit->signal : exit->code;
  } else {
    result.output = child.status().ToString();
  }
  std::ifstream in(path);
  result.output += std::string(std::istreambuf_iterator<char>(in), {});
  unlink(path);
  return result;
}

uint16_t FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

Result<std::unique_ptr<FtdInstance>> FtdInstance::Create(const std::string& label,
                                                         const std::string& parent_dir) {
  fs::path parent = parent_dir.empty() ? fs::temp_directory_path() : fs::path(parent_dir);
  std::string templ = (parent / ("ftd-test-" + label + "-XXXXXX")).string();
  if (!mkdtemp(templ.data())) return ErrnoStatus("mkdtemp", errno);
  return std::unique_ptr<FtdInstance>(new FtdInstance(templ, "test-" + label));
}

FtdInstance::~FtdInstance() {
  ftd_.reset();  // SIGKILL + reap if still running; its QEMU dies with it (PDEATHSIG)
  // FT_TEST_KEEP_DIRS=1 keeps the host's directory (logs, images, the record log) for a
  // post-mortem; whoever sets it removes the directories afterwards.
  if (const char* keep = std::getenv("FT_TEST_KEEP_DIRS"); keep && std::string(keep) == "1") {
    std::fprintf(stderr, "FT_TEST_KEEP_DIRS: kept %s\n", dir_.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string FtdInstance::console_log(const std::string& vm) const {
  return state_dir() + "/vms/" + vm + "/console.log";
}
std::string FtdInstance::qmp_socket(const std::string& vm) const {
  return run_dir() + "/" + vm + "/qmp.sock";
}
std::string FtdInstance::monitor_socket(const std::string& vm) const {
  return run_dir() + "/" + vm + "/monitor.sock";
}
std::string FtdInstance::pid_file(const std::string& vm) const {
  return run_dir() + "/" + vm + "/qemu.pid";
}

std::string FtdInstance::GuestVmConfig(const GuestVmOptions& vm) {
  std::string guest = FT_GUEST_DIR;
  std::string net =
      vm.bridge.empty() ? "ftguest.ip=10.0.2.15/24 ftguest.gw=10.0.2.2" : "ftguest.ip=" + vm.lab_ip;
  std::string text = fmt::format(
      "[node]\nname = {}\nstate_dir = {}\nrun_dir = {}\nlog_level = debug\n\n"
      "[vm {}]\nmemory_mib = {}\nkernel = {}\ninitrd = {}/initrd.img\n"
      "cmdline = console=ttyS0 {} ftguest.workload={}{}{}\nqemu = {}\n",
      node_name(), state_dir(), run_dir(), vm.name, vm.memory_mib, GuestKernel(), guest, net,
      vm.workload, vm.extra_cmdline.empty() ? "" : " ", vm.extra_cmdline, QemuBinary());
  text +=
      vm.bridge.empty() ? "nic = user\n" : fmt::format("nic = bridge\nbridge = {}\n", vm.bridge);
  if (vm.stream_port) text += fmt::format("forward = 127.0.0.1:{} -> 7000\n", vm.stream_port);
  if (vm.records_port) text += fmt::format("forward = 127.0.0.1:{} -> 7001\n", vm.records_port);
  if (vm.data_disk) {
    std::string disk = fmt::format("{}/{}-data.qcow2", dir_, vm.name);
    std::error_code ec;
    fs::copy_file(vm.data_disk_image.empty() ? guest + "/data.qcow2" : vm.data_disk_image, disk,
                  fs::copy_options::overwrite_existing, ec);
    text += fmt::format("disk.vda = {}\n", disk);
  }
  return text;
}

CommandOutput FtdInstance::Ftctl(const std::vector<std::string>& args,
                                 std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {FtctlBinary(), "--socket", control_socket()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, timeout);
}

Status FtdInstance::WriteConfig(const std::string& text) {
  std::ofstream out(config_path());
  out << text;
  return out ? Status::Ok() : Internal("cannot write " + config_path());
}

Status FtdInstance::WriteChannelKey() {
  std::ofstream out(channel_key_path());
  out << "ftd-test-channel-key-0123456789abcdef\n";
  out.close();
  if (!out) return Internal("cannot write " + channel_key_path());
  fs::permissions(channel_key_path(), fs::perms::owner_read | fs::perms::owner_write);
  return Status::Ok();
}

Status FtdInstance::Start(const std::vector<std::string>& extra_args,
                          const std::vector<std::string>& extra_env, const std::string& netns) {
  std::vector<std::string> argv;
  // `ip netns exec` execs ftd in place: the child's PID is ftd's.
  if (!netns.empty()) argv = {"ip", "netns", "exec", netns};
  argv.insert(argv.end(), {FtdBinary(), "--config", config_path()});
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  replay::SpawnOptions options;
  options.output_path = ftd_log();
  options.extra_env = extra_env;
  FT_ASSIGN_OR_RETURN(ftd_, replay::ChildProcess::Spawn(PinnedTo(cpus_, argv), options));
  start_args_ = extra_args;
  start_env_ = extra_env;
  start_netns_ = netns;
  return Status::Ok();
}

Status FtdInstance::Restart(const std::string& config_text) {
  if (!ftd_) return FailedPrecondition("ftd was never started");
  if (ftd_->running() && !ftd_->TryReap()) return FailedPrecondition("ftd is still running");
  FT_RETURN_IF_ERROR(WriteConfig(config_text));
  std::ofstream(ftd_log(), std::ios::app)
      << "\n---- test: ftd restarted (it ended " << ftd_->exit_status()->Describe() << ") ----\n";
  return Start(start_args_, start_env_, start_netns_);
}

std::string FtdInstance::LogTail(size_t max_bytes) const {
  std::ifstream in(ftd_log());
  std::deque<std::string> kept;
  size_t bytes = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.find(" debug [") != std::string::npos) continue;
    bytes += line.size() + 1;
    kept.push_back(std::move(line));
    while (bytes > max_bytes && kept.size() > 1) {
      bytes -= kept.front().size() + 1;
      kept.pop_front();
    }
  }
  std::string text;
  for (const auto& line : kept) text += line + "\n";
  return text;
}

Result<nlohmann::json> FtdInstance::StatusJson(const std::string& vm) {
  auto out = Ftctl({"status", vm, "--json"});
  if (out.exit_code != 0) {
    return Unavailable(fmt::format("ftctl status exited {}: {}", out.exit_code, out.output));
  }
  auto parsed = nlohmann::json::parse(out.output, nullptr, false);
  if (parsed.is_discarded()) return ProtocolError("ftctl --json printed no JSON: " + out.output);
  if (!parsed.contains("vm") || !parsed["vm"].is_object()) {
    return ProtocolError("ftctl status --json printed no \"vm\": " + out.output);
  }
  return parsed["vm"];
}

std::string WithNodeSetting(const std::string& config, const std::string& line) {
  std::string text = config;
  size_t node = text.find("[node]");
  if (node == std::string::npos) return "[node]\n" + line + "\n" + text;
  size_t eol = text.find('\n', node);
  if (eol == std::string::npos) return text + "\n" + line + "\n";
  text.insert(eol + 1, line + "\n");
  return text;
}

// Where a process that should have ended is: its state and each thread's wait channel from
// /proc, and the threads' stacks when gdb is installed (a replayer that never exits).
std::string DescribeProcess(int pid) {
  std::string out = fmt::format("process {}: ", pid);
  std::string stat = ReadFile(fmt::format("/proc/{}/stat", pid));
  if (stat.empty()) return out + "gone (or not visible)";
  out += "stat: " + stat;
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
    std::string comm = ReadFile(task.path().string() + "/comm");
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    out += fmt::format("  thread {} '{}' wchan {}\n", task.path().filename().string(), comm,
                       ReadFile(task.path().string() + "/wchan"));
  }
  if (access("/usr/bin/gdb", X_OK) == 0) {
    auto bt = RunCommand(
        {"/usr/bin/gdb", "-p", std::to_string(pid), "-batch", "-ex", "thread apply all bt"},
        std::chrono::seconds(60));
    out += bt.output;
  }
  return out;
}

Result<replay::ExitStatus> FtdInstance::Stop(std::chrono::milliseconds timeout) {
  if (!ftd_) return FailedPrecondition("ftd was not started");
  ftd_->Signal(SIGTERM);
  auto exit = ftd_->WaitFor(timeout);
  if (!exit) {
    // Where it hangs, before it is killed: each thread's wait channel and stack.
    std::string where = DescribeProcess(ftd_->pid());
    ftd_->Terminate(std::chrono::milliseconds(100));
    return Timeout(
        fmt::format("ftd did not stop within {} ms of SIGTERM\n{}", timeout.count(), where));
  }
  return *exit;
}

}  // namespace ft::testing
