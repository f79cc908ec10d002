#include "ft/replay/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include <fmt/format.h>

extern char** environ;

namespace ft::replay {
namespace {

ExitStatus FromWaitStatus(int wstatus) {
  ExitStatus s;
  if (WIFSIGNALED(wstatus)) {
    s.signaled = true;
    s.signal = WTERMSIG(wstatus);
  } else if (WIFEXITED(wstatus)) {
    s.code = WEXITSTATUS(wstatus);
  }
  return s;
}

// Runs in the forked child: only async-signal-safe calls until exec.
[[noreturn]] void ExecChild(char* const* argv, char* const* envp, int output_fd, int error_pipe,
                            bool die_with_parent, pid_t parent, const int* nice_value,
                            const std::vector<int>& inherit_fds) {
  if (nice_value) setpriority(PRIO_PROCESS, 0, *nice_value);
  if (die_with_parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The parent may have died between fork and prctl: then nobody would ever kill us.
    if (getppid() != parent) _exit(127);
  }
  // Own process group: a Ctrl-C on ftd's terminal reaches ftd, which shuts QEMU down in
  // order, instead of killing QEMU under it.
  setpgid(0, 0);
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  signal(SIGPIPE, SIG_DFL);
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, STDIN_FILENO);
  if (output_fd >= 0) {
    dup2(output_fd, STDOUT_FILENO);
    dup2(output_fd, STDERR_FILENO);
  }
  for (int fd : inherit_fds) {
    if (fcntl(fd, F_SETFD, 0) != 0) {
      int err = errno;
      ssize_t unused = write(error_pipe, &err, sizeof err);
      (void)unused;
      _exit(127);
    }
  }
  execvpe(argv[0], argv, envp);
  int err = errno;
  ssize_t unused = write(error_pipe, &err, sizeof err);
  (void)unused;
  _exit(127);
}

}  // namespace

std::string ExitStatus::Describe() const {
  if (signaled) {
    const char* name = sigabbrev_np(signal);
    return fmt::format("killed by signal {} (SIG{})", signal, name ? name : "?");
  }
  return fmt::format("exited with code {}", code);
}

Result<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(const std::vector<std::string>& argv,
                                                          const SpawnOptions& options) {
  if (argv.empty()) return InvalidArgument("empty command line");

  for (int fd : options.inherit_fds) {
    if (fcntl(fd, F_GETFD) < 0) {
      return ErrnoStatus(fmt::format("descriptor {} for '{}' to inherit", fd, argv[0]), errno);
    }
  }
  int output_fd = -1;
  if (!options.output_path.empty()) {
    output_fd = open(options.output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (output_fd < 0) return ErrnoStatus("cannot open '" + options.output_path + "'", errno);
  }
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    int err = errno;
    if (output_fd >= 0) close(output_fd);
    return ErrnoStatus("pipe", err);
  }

  // Build argv/envp before fork: the child must not allocate.
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e) env_storage.emplace_back(*e);
  for (const auto& e : options.extra_env) env_storage.push_back(e);
  std::vector<char*> cenv;
  for (auto& e : env_storage) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    if (output_fd >= 0) close(output_fd);
    return ErrnoStatus("fork", err);
  }
  if (pid == 0) {
    ExecChild(cargv.data(), cenv.data(), output_fd, pipe_fds[1], options.die_with_parent, parent,
              options.nice ? &*options.nice : nullptr, options.inherit_fds);
  }
  close(pipe_fds[1]);
  if (output_fd >= 0) close(output_fd);

  // EOF on the CLOEXEC pipe means exec succeeded; an errno means it did not.
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(pipe_fds[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  close(pipe_fds[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int wstatus;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    return ErrnoStatus("cannot execute '" + argv[0] + "'", child_errno);
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, argv[0]));
}

ChildProcess::~ChildProcess() {
  if (running()) {
    kill(pid_, SIGKILL);
    int wstatus;
    while (waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
    }
  }
}

std::optional<ExitStatus> ChildProcess::TryReap() {
  if (exit_) return exit_;
  int wstatus;
  pid_t r = waitpid(pid_, &wstatus, WNOHANG);
  if (r == pid_) exit_ = FromWaitStatus(wstatus);
  return exit_;
}

std::optional<ExitStatus> ChildProcess::WaitFor(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!TryReap()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return exit_;
}

void ChildProcess::Signal(int sig) {
  if (running()) kill(pid_, sig);
}

ExitStatus ChildProcess::Terminate(std::chrono::milliseconds grace) {
  if (exit_) return *exit_;
  Signal(SIGTERM);
  if (auto s = WaitFor(grace)) return *s;
  Signal(SIGKILL);
  int wstatus;
  while (waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
  }
  exit_ = FromWaitStatus(wstatus);
  return *exit_;
}

std::string TailOfFile(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  auto size = static_cast<size_t>(in.tellg());
  size_t start = size > max_bytes ? size - max_bytes : 0;
  in.seekg(static_cast<std::streamoff>(start));
  std::string text(size - start, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (start > 0) {
    auto nl = text.find('\n');
    if (nl != std::string::npos) text.erase(0, nl + 1);
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

}  // namespace ft::replay
