// Hundreds of connections to ftd's logging-channel port that never authenticate (issue 19:
// 400 of them, each announcing a 4 MiB frame, grew an idle ftd from 10 MiB to 1015 MiB in
// 10 s). Real ftd processes on loopback: ftd's memory stays within a stated bound, a real peer
// still gets in, and a protected pair under the flood keeps its lag and heartbeats (no
// failover). The flood comes from 20 loopback addresses (127.0.1.x), the real peers from
// 127.0.0.1. Every loop is bounded in count and time; every socket is closed at the end.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <asio/io_context.hpp>
#include <atomic>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ft/channel/session.h"
#include "guest_client.h"
#include "lab_pair.h"
#include "lockstep_pair.h"
#include "proc_status.h"

namespace ft::testing {
namespace {

using namespace std::chrono_literals;

// The bound this test states: what a flood may add to ftd's resident memory. Without the
// limits before authentication it added about 1 GiB; with them about 1-3 MiB (a few hundred
// sockets' worth of 4 KiB buffers, at most 64 of them at once in a handshake).
constexpr long kMaxRssGrowthKib = 32 * 1024;
constexpr int kFloodConnections = 400;
constexpr auto kFloodDuration = 10s;
// What the flood sends: a header announcing a frame of the channel's default maximum, 4 MiB.
constexpr uint32_t kAnnouncedBytes = 4u << 20;

// Samples a process's VmRSS until stopped; keeps the largest.
struct RssSampler {
  explicit RssSampler(pid_t pid) {
    thread = std::thread([this, pid] {
      while (!stop) {
        long kib = VmRssKib(pid);
        if (kib > max_kib) max_kib = kib;
        std::this_thread::sleep_for(50ms);
      }
    });
  }
  ~RssSampler() { Stop(); }
  void Stop() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
  std::atomic<bool> stop{false};
  std::atomic<long> max_kib{0};
  std::thread thread;
};

// Keeps up to kFloodConnections connections open to a port for a while: each sends a frame
// header announcing kAnnouncedBytes (every other one only the first 7 bytes of it, so it
// waits for the handshake deadline rather than being refused at once) and then nothing. A
// connection ftd closes is opened again, at most kMaxReopensPerSecond in all, so the test
// floods memory and handshake slots, not the CPU the protected VM needs.
class UnauthenticatedFlood {
 public:
  static constexpr int kAddresses = 20;
  static constexpr int kMaxReopensPerSecond = 200;

  UnauthenticatedFlood(uint16_t port, std::chrono::milliseconds duration) : port_(port) {
    thread_ = std::thread([this, duration] { Run(duration); });
  }
  ~UnauthenticatedFlood() { Wait(); }
  void Wait() {
    if (thread_.joinable()) thread_.join();
  }
  int opened() const { return opened_; }
  int closed_by_ftd() const { return closed_by_ftd_; }
  int max_open() const { return max_open_; }

 private:
  int Open(int i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    timeval t{0, 500000};  // a connect to a full backlog gives up after 0.5 s
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &t, sizeof t);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_addr.s_addr = htonl(0x7f000100u + 1 + i % kAddresses);  // 127.0.1.1 ...
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port_);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
        ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
      ::close(fd);
      return -1;
    }
    unsigned char header[8] = {0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78};  // length, CRC
    for (int b = 0; b < 4; ++b)
      header[b] = static_cast<unsigned char>(kAnnouncedBytes >> (24 - 8 * b));
    (void)!::send(fd, header, i % 2 ? 7 : 8, MSG_NOSIGNAL);
    ++opened_;
    return fd;
  }

  void Run(std::chrono::milliseconds duration) {
    const auto end = std::chrono::steady_clock::now() + duration;
    std::vector<int> fds(kFloodConnections, -1);
    for (int i = 0; i < kFloodConnections && std::chrono::steady_clock::now() < end; ++i) {
      fds[i] = Open(i);
    }
    auto window = std::chrono::steady_clock::now();
    int reopened_in_window = 0;
    while (std::chrono::steady_clock::now() < end) {
      std::vector<pollfd> polls;
      for (int fd : fds) polls.push_back({fd, POLLIN, 0});
      ::poll(polls.data(), polls.size(), 20);
      int open = 0;
      for (int i = 0; i < kFloodConnections; ++i) {
        if (fds[i] >= 0 && (polls[i].revents & (POLLIN | POLLHUP | POLLERR))) {
          char buf[256];
          if (::recv(fds[i], buf, sizeof buf, MSG_DONTWAIT) <= 0) {
            ::close(fds[i]);
            fds[i] = -1;
            ++closed_by_ftd_;
          }
        }
        if (std::chrono::steady_clock::now() - window >= 1s) {
          window = std::chrono::steady_clock::now();
          reopened_in_window = 0;
        }
        if (fds[i] < 0 && reopened_in_window < kMaxReopensPerSecond) {
          fds[i] = Open(i);
          ++reopened_in_window;
        }
        if (fds[i] >= 0) ++open;
      }
      max_open_ = std::max(max_open_.load(), open);
    }
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }

  uint16_t port_;
  std::thread thread_;
  std::atomic<int> opened_{0}, closed_by_ftd_{0}, max_open_{0};
};

// A real peer: the handshake as another ftd does it (peer control, the pair's key), from
// 127.0.0.1. Ok once both sides accepted each other.
Status ConnectRealPeer(uint16_t port, const std::string& key) {
  asio::io_context io;
  channel::Options options;
  options.key = key;
  channel::Identity self;
  self.node = "flood-test-peer";
  self.service = channel::Service::kPeerControl;
  Status outcome = Timeout("no handshake outcome");
  std::shared_ptr<channel::Session> session;
  channel::Connect(io, "127.0.0.1", port, self, options,
                   [&](Result<std::shared_ptr<channel::Session>> r) {
                     if (r.ok()) {
                       session = *r;
                       outcome = Status::Ok();
                     } else {
                       outcome = r.status();
                     }
                     io.stop();
                   });
  io.run_for(5s);
  if (session) session->Close();
  return outcome;
}

// The channel port in a config's "listen = host:port" line.
uint16_t ListenPort(const std::string& config_path) {
  std::smatch m;
  std::string text = ReadFile(config_path);
  if (!std::regex_search(text, m, std::regex(R"(listen = [0-9.]+:([0-9]+))"))) return 0;
  return static_cast<uint16_t>(std::stoi(m[1]));
}

int CountLines(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The flood holds 400 sockets here; make sure the test process may.
void RaiseFdLimit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < 4096) {
    r.rlim_cur = std::min<rlim_t>(4096, r.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

// Floods `port` of the ftd `pid` for kFloodDuration while a real peer connects three times;
// checks what the user cares about and prints what it measured.
void FloodAndCheck(FtdInstance& ftd, uint16_t port, const std::string& label) {
  const pid_t pid = ftd.process()->pid();
  std::this_thread::sleep_for(1s);
  const long before_kib = VmRssKib(pid);
  ASSERT_GT(before_kib, 0);
  RssSampler rss(pid);
  std::string key = ReadFile(ftd.channel_key_path());
  key.erase(key.find_last_not_of(" \t\r\n") + 1);  // as ftd reads it
  int peers_in = 0;
  std::string peer_failures;
  {
    UnauthenticatedFlood flood(port, kFloodDuration);
    for (int i = 0; i < 3; ++i) {
      std::this_thread::sleep_for(2500ms);
      Status s = ConnectRealPeer(port, key);
      if (s.ok()) {
        ++peers_in;
      } else {
        peer_failures += s.ToString() + "\n";
      }
    }
    flood.Wait();
    rss.Stop();
    const long growth = rss.max_kib - before_kib;
    std::printf(
        "%s: VmRSS %ld KiB before, at most %ld KiB during the flood (+%ld KiB, bound +%ld); "
        "%d connections opened, %d closed by ftd, at most %d open at once; real peer in %d/3\n",
        label.c_str(), before_kib, rss.max_kib.load(), growth, kMaxRssGrowthKib, flood.opened(),
        flood.closed_by_ftd(), flood.max_open(), peers_in);
    EXPECT_GE(flood.opened(), kFloodConnections);
    EXPECT_LE(growth, kMaxRssGrowthKib);
  }
  EXPECT_EQ(peers_in, 3) << peer_failures << ftd.LogTail();
  ASSERT_EQ(::kill(pid, 0), 0) << "ftd died under the flood:\n" << ftd.LogTail();
  // The log says what happened, once per interval, not once per connection.
  std::this_thread::sleep_for(11s - kFloodDuration + 500ms);  // the last summary is due
  const std::string log = ReadFile(ftd.ftd_log());
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("refused channel peer 127.0.1.") != std::string::npos) {
      std::printf("  ftd: %s\n", line.c_str());
    }
  }
  const int drop_lines = CountLines(log, "refused channel peer 127.0.1.");
  EXPECT_GE(drop_lines, 1);
  EXPECT_LE(drop_lines, 4) << "a flood of connections became a flood of log lines";
  EXPECT_NE(log.find("dropped before authenticating"), std::string::npos) << ftd.LogTail();
  // ftctl still reaches ftd.
  EXPECT_EQ(ftd.Ftctl({"list"}).exit_code, 0);
}

TEST(PreauthFloodTest, IdleFtdStaysSmallAndLetsARealPeerIn) {
  RaiseFdLimit();
  auto ftd = FtdInstance::Create("idle");
  ASSERT_TRUE(ftd.ok()) << ftd.status().ToString();
  FtdInstance& f = **ftd;
  ASSERT_TRUE(f.WriteChannelKey().ok());
  const uint16_t port = FreeLoopbackPort();
  ASSERT_TRUE(f.WriteConfig(fmt::format("[node]\nname = {}\nstate_dir = {}\nrun_dir = {}\n"
                                        "channel_key_file = {}\nlisten = 127.0.0.1:{}\n",
                                        f.node_name(), f.state_dir(), f.run_dir(),
                                        f.channel_key_path(), port))
                  .ok());
  ASSERT_TRUE(f.Start().ok());
  ASSERT_TRUE(WaitForFileContaining(f.ftd_log(), "logging channel: listening", 30s)) << f.LogTail();
  FloodAndCheck(f, port, "idle ftd");
  auto exit = f.Stop(20s);
  ASSERT_TRUE(exit.ok()) << exit.status().ToString();
  EXPECT_TRUE(exit->clean()) << exit->Describe() << f.LogTail();
}

// The backup of a protected pair (real QEMU, loopback) is flooded on the port its primary
// connects to. The pair must not notice: no heartbeat timeout, no failover, lag in bound.
TEST(PreauthFloodTest, ProtectedPairKeepsItsLagAndHeartbeats) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  RaiseFdLimit();
  LockstepOptions options;
  options.vm.workload = "cpu,chaos";
  options.vm.data_disk = false;
  options.max_lag_ms = 2000;
  auto pair = LockstepPair::Start(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto& p = **pair;
  ASSERT_TRUE(p.WaitForFtState(p.primary(), proto::VM_FT_STATE_PROTECTED, 60s).ok()) << BothLogs(p);
  ASSERT_TRUE(WaitForFileContaining(p.backup().console_log(p.vm()), "cpu: round 1 ", 120s))
      << BothLogs(p);
  const uint16_t port = ListenPort(p.backup().config_path());
  ASSERT_NE(port, 0);
  auto first = p.Status(p.primary());
  ASSERT_TRUE(first.ok());
  const uint64_t epoch = U64(*first, "epoch");
  const uint64_t acked_before = U64(*first, "acked_bytes");

  // Both sides' status every 250 ms while the backup's port is flooded.
  std::atomic<bool> stop{false};
  std::atomic<int> samples{0};
  std::atomic<double> max_lag_ms{0};
  std::string not_protected;
  std::thread sampler([&] {
    while (!stop) {
      auto primary = p.Status(p.primary());
      auto backup = p.Status(p.backup());
      if (primary.ok() && backup.ok()) {
        ++samples;
        if (primary->value("ft_state", "") != ProtoName(proto::VM_FT_STATE_PROTECTED) ||
            backup->value("ft_state", "") != ProtoName(proto::VM_FT_STATE_REPLAYING)) {
          if (not_protected.empty()) {
            not_protected = "primary: " + primary->dump() + "\nbackup: " + backup->dump();
          }
        }
        uint64_t end = U64(*primary, "log_icount");
        uint64_t replayed = U64(*backup, "replayed_icount");
        double lag = end > replayed ? static_cast<double>(end - replayed) * 32 / 1e6 : 0;
        max_lag_ms = std::max(max_lag_ms.load(), lag);
      }
      std::this_thread::sleep_for(250ms);
    }
  });
  FloodAndCheck(p.backup(), port, "backup of a protected pair");
  stop = true;
  sampler.join();

  auto last = p.Status(p.primary());
  ASSERT_TRUE(last.ok());
  std::printf(
      "protected pair under the flood: max lag %.1f ms (bound %d) over %d samples, "
      "channel rtt %llu us, %llu log bytes acked meanwhile\n",
      max_lag_ms.load(), options.max_lag_ms, samples.load(),
      static_cast<unsigned long long>(U64(*last, "channel_rtt_us")),
      static_cast<unsigned long long>(U64(*last, "acked_bytes") - acked_before));
  EXPECT_GT(samples.load(), 10);
  EXPECT_TRUE(not_protected.empty()) << not_protected << BothLogs(p);
  EXPECT_LE(max_lag_ms.load(), options.max_lag_ms);
  EXPECT_EQ(U64(*last, "epoch"), epoch) << "a failover happened";
  EXPECT_GT(U64(*last, "acked_bytes"), acked_before) << "acks stopped";
  for (FtdInstance* side : {&p.primary(), &p.backup()}) {
    const std::string log = ReadFile(side->ftd_log());
    EXPECT_EQ(log.find("no frame from peer"), std::string::npos) << BothLogs(p);
  }
}

}  // namespace
}  // namespace ft::testing
