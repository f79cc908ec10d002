// ftd as systemd sees it (Type=notify), with a real ftd process and a datagram socket that
// stands in for systemd's: READY=1 with a STATUS= line once ftd is up, WATCHDOG=1 every
// half of WATCHDOG_USEC, STOPPING=1 on SIGTERM, each sent by ftd's own pid (the unit's
// NotifyAccess=main drops anything else). No VM: none of this needs QEMU.
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ftd_instance.h"
#include "guest_client.h"

namespace ft::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Notification {
  std::string text;  // "READY=1\nSTATUS=..."
  pid_t sender = 0;  // from SCM_CREDENTIALS, as systemd reads it
  Clock::time_point at;

  bool Has(const std::string& line) const {
    return ("\n" + text + "\n").find("\n" + line + "\n") != std::string::npos;
  }
  std::optional<std::string> Value(const std::string& key) const {
    std::string all = "\n" + text + "\n";
    auto at_key = all.find("\n" + key + "=");
    if (at_key == std::string::npos) return std::nullopt;
    auto begin = at_key + key.size() + 2;
    return all.substr(begin, all.find('\n', begin) - begin);
  }
};

// systemd's end of the notify protocol: a unix datagram socket that learns each sender's pid.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    int on = 1;
    ok_ = fd_ >= 0 && path_.size() < sizeof addr.sun_path &&
          bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
          setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) == 0;
  }
  ~NotifySocket() {
    if (fd_ >= 0) close(fd_);
    unlink(path_.c_str());
  }
  bool ok() const { return ok_; }
  const std::string& path() const { return path_; }

  // The next datagram within `timeout`.
  std::optional<Notification> Receive(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char data[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{data, sizeof data};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(fd_, &msg, 0);
    if (n < 0) return std::nullopt;
    Notification note{std::string(data, static_cast<size_t>(n)), 0, Clock::now()};
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred;
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        note.sender = cred.pid;
      }
    }
    received_.push_back(note);
    return note;
  }

  // Notifications until one has `line`, within `timeout`; that one, or nullopt.
  std::optional<Notification> WaitFor(const std::string& line, std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      auto note = Receive(std::max(left, 1ms));
      if (note && note->Has(line)) return note;
    }
    return std::nullopt;
  }

  // Everything received so far, for failure messages.
  std::string Transcript() const {
    std::string out;
    for (const auto& n : received_) out += fmt::format("[pid {}] {}\n---\n", n.sender, n.text);
    return out;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool ok_ = false;
  std::vector<Notification> received_;
};

class ServiceNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The test's own environment must not shadow what it gives ftd (e.g. ctest run as a
    // systemd service).
    for (const char* v : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}) unsetenv(v);
    auto created = FtdInstance::Create("notify");
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    ftd_ = std::move(created).value();
    ASSERT_TRUE(
        ftd_->WriteConfig(fmt::format("[node]\nname = notify\nstate_dir = {}\nrun_dir = {}\n",
                                      ftd_->state_dir(), ftd_->run_dir()))
            .ok());
    systemd_ = std::make_unique<NotifySocket>(ftd_->dir() + "/notify.sock");
    ASSERT_TRUE(systemd_->ok()) << systemd_->path() << ": " << std::strerror(errno);
  }
  void TearDown() override {
    systemd_.reset();
    ftd_.reset();  // SIGKILLs ftd if a failed assertion left it running; removes the dir
  }

  pid_t ftd_pid() { return ftd_->process()->pid(); }
  std::string Context() {
    return "notifications:\n" + systemd_->Transcript() + "ftd log:\n" + ReadFile(ftd_->ftd_log());
  }

  std::unique_ptr<FtdInstance> ftd_;
  std::unique_ptr<NotifySocket> systemd_;
};

TEST_F(ServiceNotifyTest, ReadyStatusWatchdogAndStopping) {
  ASSERT_TRUE(ftd_->Start({}, {"NOTIFY_SOCKET=" + systemd_->path(), "WATCHDOG_USEC=1000000"}).ok());

  auto ready = systemd_->WaitFor("READY=1", 15s);
  ASSERT_TRUE(ready) << Context();
  EXPECT_EQ(ready->sender, ftd_pid()) << Context();
  EXPECT_EQ(ready->Value("STATUS"), "no VMs") << Context();
  // The control socket listens before ftd says it is ready.
  auto list = ftd_->Ftctl({"list"});
  EXPECT_EQ(list.exit_code, 0) << list.output;

  // Pings every 500 ms from ftd's loop: never a gap that would make systemd (1 s) kill it.
  std::vector<Clock::time_point> pings;
  if (ready->Has("WATCHDOG=1")) pings.push_back(ready->at);
  auto until = Clock::now() + 2500ms;
  while (Clock::now() < until) {
    auto note = systemd_->WaitFor(
        "WATCHDOG=1", std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()));
    if (!note) break;
    EXPECT_EQ(note->sender, ftd_pid());
    pings.push_back(note->at);
  }
  EXPECT_GE(pings.size(), 4u) << Context();
  EXPECT_LE(pings.size(), 8u) << "pings far more often than half of WATCHDOG_USEC\n" << Context();
  for (size_t i = 1; i < pings.size(); ++i) {
    EXPECT_LT(pings[i] - pings[i - 1], 1000ms) << "ping " << i << "\n" << Context();
  }

  auto stopped = ftd_->Stop(10s);
  ASSERT_TRUE(stopped.ok()) << stopped.status().ToString() << "\n" << Context();
  EXPECT_TRUE(stopped->clean()) << stopped->Describe() << "\n" << Context();
  auto stopping = systemd_->WaitFor("STOPPING=1", 2s);
  ASSERT_TRUE(stopping) << Context();
  EXPECT_EQ(stopping->sender, ftd_pid());
}

// WATCHDOG_PID names another process (the variables were inherited): ftd must not ping on
// its behalf, and still says READY=1 and STOPPING=1.
TEST_F(ServiceNotifyTest, NoWatchdogPingsWhenTheWatchdogIsAnotherProcess) {
  ASSERT_TRUE(ftd_->Start({}, {"NOTIFY_SOCKET=" + systemd_->path(), "WATCHDOG_USEC=1000000",
                               "WATCHDOG_PID=1"})
                  .ok());
  auto ready = systemd_->WaitFor("READY=1", 15s);
  ASSERT_TRUE(ready) << Context();
  EXPECT_FALSE(ready->Has("WATCHDOG=1")) << Context();
  EXPECT_FALSE(systemd_->WaitFor("WATCHDOG=1", 1500ms)) << Context();

  auto stopped = ftd_->Stop(10s);
  ASSERT_TRUE(stopped.ok()) << stopped.status().ToString() << "\n" << Context();
  EXPECT_TRUE(systemd_->WaitFor("STOPPING=1", 2s)) << Context();
}

}  // namespace
}  // namespace ft::testing
