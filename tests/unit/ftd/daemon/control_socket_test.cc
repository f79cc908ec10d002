// The control socket between ftctl and ftd: it keeps accepting through a shortage of file
// descriptors (issue 19: one failed accept used to stop it for good).
#include "ft/daemon/control_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <asio.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace ft::daemon {
namespace {

using namespace std::chrono_literals;

class ControlSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ftd-control-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/ftd.sock";
    server_ = std::make_unique<ControlServer>(
        io_, path_, [](const std::string& request, ControlServer::Respond respond) {
          respond("echo:" + request);
        });
    ASSERT_TRUE(server_->Start().ok());
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    asio::post(io_, [this] { server_->Stop(); });
    guard_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_ = asio::make_work_guard(io_);
  std::unique_ptr<ControlServer> server_;
  std::thread thread_;
  std::string dir_, path_;
};

TEST_F(ControlSocketTest, AcceptFailuresBackOffAndTheServerAnswersAgain) {
  auto before = CallControlSocket(path_, "first", 2s);
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(*before, "echo:first");

  // ftctl connects while ftd has no descriptor left to accept it with (the client's socket
  // is made before they run out; connecting takes none).
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  rlimit low = old;
  low.rlim_cur = std::min<rlim_t>(old.rlim_cur, 512);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> hog;
  for (int h; hog.size() < 4096 && (h = ::open("/dev/null", O_RDONLY)) >= 0;) hog.push_back(h);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
  const bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  const std::string request = FrameControlMessage("during");
  const bool sent = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
                    static_cast<ssize_t>(request.size());
  std::this_thread::sleep_for(300ms);  // accept fails (EMFILE) and is retried meanwhile
  for (int h : hog) ::close(h);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  ASSERT_FALSE(hog.empty());
  ASSERT_TRUE(connected);
  ASSERT_TRUE(sent);

  // The waiting request is answered within the longest back-off (1 s).
  std::string reply;
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[256];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  EXPECT_EQ(reply, FrameControlMessage("echo:during"));

  auto after = CallControlSocket(path_, "after", 2s);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(*after, "echo:after");
}

TEST_F(ControlSocketTest, StopStillStopsIt) {
  asio::post(io_, [this] { server_->Stop(); });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(std::filesystem::exists(path_));
  auto r = CallControlSocket(path_, "x", 500ms);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace ft::daemon
