// GuestNic over a real unix socket, with the test playing QEMU's stream netdev: bad frames
// are dropped and counted, a QEMU that goes away and comes back is served again, and the
// gate holds frames until the ack that covers them.
#include "ft/net/guest_nic.h"

#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "ft/net/stream_framing.h"

namespace ft::net {
namespace {

using namespace std::chrono_literals;

struct FakeQemu {
  int fd = -1;
  explicit FakeQemu(const std::string& path) {
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(fd);
      fd = -1;
    }
  }
  ~FakeQemu() {
    if (fd >= 0) close(fd);
  }
  void Send(const std::string& bytes) {
    ASSERT_EQ(write(fd, bytes.data(), bytes.size()), ssize_t(bytes.size()));
  }
};

struct GuestNicTest : ::testing::Test {
  void SetUp() override {
    char templ[] = "/tmp/ftd-nic-test-XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    dir = templ;
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  void Run(std::chrono::milliseconds d = 100ms) { io.run_for(d); }
  std::string dir;
  asio::io_context io;
  uint64_t produced = 0;
};

std::string EthernetFrame(size_t size, char fill) {
  std::string f(size, fill);
  f.replace(0, 12, "\x52\x54\x00\x12\x34\x56\x52\x54\x00\x12\x34\x57", 12);
  return f;
}

TEST_F(GuestNicTest, BadFramesAreDroppedAndCountedAndAReturningQemuIsServed) {
  GuestNicOptions o;
  o.vm = "t";
  o.socket_path = dir + "/nic.sock";
  o.outbound = Outbound::kGated;
  o.log_position = [this]() -> Result<uint64_t> { return produced; };
  auto nic = GuestNic::Create(io, o);
  ASSERT_TRUE(nic.ok()) << nic.status().ToString();
  {
    FakeQemu qemu(o.socket_path);
    ASSERT_GE(qemu.fd, 0);
    Run();
    EXPECT_TRUE((*nic)->stats().guest_connected);
    qemu.Send(EncodeStreamFrame("tiny"));                               // runt
    qemu.Send(EncodeStreamFrame(std::string(kMaxFrameSize + 1, 'o')));  // oversized
    produced = 100;
    qemu.Send(EncodeStreamFrame(EthernetFrame(60, 'a')));
    Run();
    auto s = (*nic)->stats();
    EXPECT_EQ(s.dropped_malformed, 2u);
    EXPECT_EQ(s.gate.submitted, 1u);
    EXPECT_EQ(s.gate.held_frames, 1u);
  }
  Run();  // QEMU went away
  EXPECT_FALSE((*nic)->stats().guest_connected);
  // The held frame is still waiting for its ack; the log goes on and the backup acks it.
  replay::RrEvent e;
  e.offset = 100;
  e.size = 8;
  (*nic)->OnLogEvents({e});
  (*nic)->OnAcked(108);
  EXPECT_EQ((*nic)->stats().gate.released, 1u);
  FakeQemu again(o.socket_path);  // a restarted QEMU connects again
  ASSERT_GE(again.fd, 0);
  Run();
  EXPECT_TRUE((*nic)->stats().guest_connected);
  (*nic)->OpenGate();
  again.Send(EncodeStreamFrame(EthernetFrame(100, 'b')));
  Run();
  EXPECT_EQ((*nic)->stats().gate.released_open, 1u);
  (*nic)->Close();
  EXPECT_FALSE(std::filesystem::exists(o.socket_path));
}

TEST_F(GuestNicTest, WithoutALogPositionNothingLeaves) {
  GuestNicOptions o;
  o.vm = "t";
  o.socket_path = dir + "/nic.sock";
  o.outbound = Outbound::kGated;
  o.log_position = []() -> Result<uint64_t> { return Unavailable("counters not mapped"); };
  auto nic = GuestNic::Create(io, o);
  ASSERT_TRUE(nic.ok());
  FakeQemu qemu(o.socket_path);
  Run();
  qemu.Send(EncodeStreamFrame(EthernetFrame(60, 'a')));
  Run();
  auto s = (*nic)->stats();
  EXPECT_EQ(s.dropped_no_log_position, 1u);
  EXPECT_EQ(s.gate.submitted, 0u);
}

TEST_F(GuestNicTest, ABackupsGuestSendsNothing) {
  GuestNicOptions o;
  o.vm = "t";
  o.socket_path = dir + "/nic.sock";
  o.outbound = Outbound::kDrop;
  auto nic = GuestNic::Create(io, o);
  ASSERT_TRUE(nic.ok());
  FakeQemu qemu(o.socket_path);
  Run();
  qemu.Send(EncodeStreamFrame(EthernetFrame(60, 'a')));
  Run();
  EXPECT_EQ((*nic)->stats().dropped_backup, 1u);
  EXPECT_EQ((*nic)->stats().gate.released, 0u);
}

TEST_F(GuestNicTest, AMissingBridgeIsNamed) {
  if (geteuid() != 0) GTEST_SKIP() << "creating a TAP needs root";
  GuestNicOptions o;
  o.vm = "t";
  o.socket_path = dir + "/nic.sock";
  o.bridge = "ftnobridge0";
  // In a network namespace of its own: the TAP must never appear on this machine's network.
  Result<std::shared_ptr<GuestNic>> nic = Internal("not run");
  std::thread([&] {
    if (unshare(CLONE_NEWNET) != 0) return;
    nic = GuestNic::Create(io, o);
  }).join();
  ASSERT_FALSE(nic.ok());
  EXPECT_NE(nic.status().message().find("bridge 'ftnobridge0' does not exist"), std::string::npos)
      << nic.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(o.socket_path));
}

}  // namespace
}  // namespace ft::net
