#include "lab.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "ftd_instance.h"

namespace ft::testing {
namespace {

constexpr auto kLabTimeout = std::chrono::seconds(60);

std::vector<std::string> LabCommand(const std::string& prefix, const std::string& dir,
                                    const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"env", "FTLAB=" + prefix, "FTLAB_DIR=" + dir, "bash",
                                   FT_LAB_SCRIPT};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

}  // namespace

Result<std::unique_ptr<Lab>> Lab::Create() {
  if (geteuid() != 0) return FailedPrecondition("the network lab needs root");
  std::unique_ptr<Lab> lab(new Lab());
  // Short and unique per process: namespace and link names have length limits.
  lab->prefix_ = fmt::format("ftt{}", getpid() % 1000000);
  lab->dir_ = "/tmp/" + lab->prefix_;
  auto up = RunCommand(LabCommand(lab->prefix_, lab->dir_, {"up"}), kLabTimeout);
  if (up.exit_code != 0) {
    // Leave nothing half-built behind.
    RunCommand(LabCommand(lab->prefix_, lab->dir_, {"down"}), kLabTimeout);
    return Unavailable(fmt::format("lab.sh up failed ({}): {}", up.exit_code, up.output));
  }
  auto env = RunCommand(LabCommand(lab->prefix_, lab->dir_, {"env"}), kLabTimeout);
  std::istringstream lines(env.output);
  for (std::string line; std::getline(lines, line);) {
    auto eq = line.find('=');
    if (eq != std::string::npos) lab->env_[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return lab;
}

Lab::~Lab() { RunCommand(LabCommand(prefix_, dir_, {"down"}), kLabTimeout); }

std::string Lab::Get(const std::string& key) const {
  auto it = env_.find(key);
  return it == env_.end() ? "" : it->second;
}

Status Lab::Run(const std::vector<std::string>& args) {
  auto out = RunCommand(LabCommand(prefix_, dir_, args), kLabTimeout);
  if (out.exit_code != 0) {
    return Internal(fmt::format("lab.sh {} failed ({}): {}", args.empty() ? "" : args[0],
                                out.exit_code, out.output));
  }
  return Status::Ok();
}

bool SkippingIsFailure() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string_view(ci) == "true";
}

Status RunInNetns(const std::string& ns, const std::function<void()>& fn) {
  Status result;
  std::thread t([&] {
    int fd = open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      result = ErrnoStatus(fmt::format("cannot open network namespace '{}'", ns), errno);
      return;
    }
    if (setns(fd, CLONE_NEWNET) != 0) {
      result = ErrnoStatus(fmt::format("cannot join network namespace '{}'", ns), errno);
      close(fd);
      return;
    }
    close(fd);
    fn();
  });
  t.join();
  return result;
}

}  // namespace ft::testing
