#include "frame_capture.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "ft/net/frame_hash.h"
#include "lab.h"

namespace ft::testing {
namespace {

int64_t Now(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace

Result<std::unique_ptr<FrameCapture>> FrameCapture::Start(const std::string& netns,
                                                          const std::string& ifname,
                                                          const std::string& source_mac) {
  std::unique_ptr<FrameCapture> c(new FrameCapture());
  unsigned m[6];
  if (std::sscanf(source_mac.c_str(), "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4],
                  &m[5]) != 6) {
    return InvalidArgument("not a MAC address: " + source_mac);
  }
  for (int i = 0; i < 6; ++i) c->mac_[i] = static_cast<unsigned char>(m[i]);
  Status made;
  FT_RETURN_IF_ERROR(RunInNetns(netns, [&] {
    c->fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (c->fd_ < 0) {
      made = ErrnoStatus("packet socket", errno);
      return;
    }
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ETH_P_ALL);
    addr.sll_ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
    if (addr.sll_ifindex == 0 || bind(c->fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr)) {
      made =
          ErrnoStatus(fmt::format("binding a packet socket to '{}' in '{}'", ifname, netns), errno);
    }
  }));
  FT_RETURN_IF_ERROR(made);
  int one = 1;
  setsockopt(c->fd_, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
  c->realtime_minus_monotonic_ns_ = Now(CLOCK_REALTIME) - Now(CLOCK_MONOTONIC);
  c->thread_ = std::thread([p = c.get()] { p->Loop(); });
  return c;
}

void FrameCapture::Loop() {
  std::vector<unsigned char> buf(70000);
  char control[256];
  while (!stop_) {
    pollfd pfd{fd_, POLLIN, 0};
    if (poll(&pfd, 1, 50) <= 0) continue;
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    sockaddr_ll from{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT);
    if (n < 14) continue;
    if (from.sll_pkttype == PACKET_OUTGOING) continue;  // the client's own frames
    if (std::memcmp(buf.data() + 6, mac_, 6) != 0) continue;
    int64_t at = Now(CLOCK_MONOTONIC);
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        timespec ts;
        std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
        at = int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec - realtime_minus_monotonic_ns_;
      }
    }
    std::lock_guard lock(mu_);
    frames_.push_back({at,
                       net::FrameHash(std::string_view(reinterpret_cast<const char*>(buf.data()),
                                                       static_cast<size_t>(n))),
                       static_cast<size_t>(n)});
  }
}

void FrameCapture::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

FrameCapture::~FrameCapture() {
  Stop();
  if (fd_ >= 0) close(fd_);
}

std::vector<CapturedFrame> FrameCapture::frames() {
  std::lock_guard lock(mu_);
  return frames_;
}

}  // namespace ft::testing
