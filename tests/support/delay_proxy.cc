#include "delay_proxy.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <deque>
#include <string>

#include <fmt/format.h>

#include "guest_client.h"

namespace ft::testing {

Result<std::unique_ptr<DelayProxy>> DelayProxy::Start(uint16_t target_port,
                                                      std::chrono::milliseconds delay,
                                                      std::string target_host) {
  std::unique_ptr<DelayProxy> p(new DelayProxy());
  p->target_port_ = target_port;
  p->target_host_ = std::move(target_host);
  p->delay_ = delay;
  p->listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(p->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(p->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(p->listen_fd_, 8) != 0) {
    return ErrnoStatus("delay proxy: bind/listen on 127.0.0.1", errno);
  }
  socklen_t len = sizeof addr;
  getsockname(p->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  p->port_ = ntohs(addr.sin_port);
  p->acceptor_ = std::thread([raw = p.get()] { raw->AcceptLoop(); });
  return p;
}

DelayProxy::~DelayProxy() {
  stop_ = true;
  shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard lock(mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : threads_) t.join();
  for (int fd : fds_) close(fd);
  close(listen_fd_);
}

void DelayProxy::AcceptLoop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    auto upstream = ConnectTcp(target_host_, target_port_, std::chrono::seconds(2));
    if (!upstream.ok()) {
      close(client);
      continue;
    }
    int one = 1;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(*upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::lock_guard lock(mu_);
    fds_.push_back(client);
    fds_.push_back(*upstream);
    threads_.emplace_back([this, client, up = *upstream] { Relay(client, up); });
    threads_.emplace_back([this, client, up = *upstream] { Relay(up, client); });
  }
}

// Reads from `from` as bytes come, writes each piece to `to` once it is `delay_` old.
void DelayProxy::Relay(int from, int to) {
  std::deque<std::pair<Clock::time_point, std::string>> queue;
  char buf[65536];
  bool eof = false;
  while (!stop_ && (!eof || !queue.empty())) {
    int wait_ms = 50;
    if (!queue.empty()) {
      auto due = queue.front().first - Clock::now();
      wait_ms = static_cast<int>(
          std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(due).count()));
    }
    pollfd p{from, static_cast<short>(eof ? 0 : POLLIN), 0};
    poll(&p, 1, std::min(wait_ms, 50));
    if (!eof && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = read(from, buf, sizeof buf);
      if (n <= 0) {
        eof = true;
      } else {
        queue.emplace_back(Clock::now() + delay_, std::string(buf, static_cast<size_t>(n)));
      }
    }
    while (!queue.empty() && queue.front().first <= Clock::now()) {
      const std::string& data = queue.front().second;
      size_t off = 0;
      while (off < data.size()) {
        ssize_t w = send(to, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (w <= 0) {
          eof = true;
          queue.clear();
          break;
        }
        off += static_cast<size_t>(w);
        bytes_ += static_cast<uint64_t>(w);
      }
      if (!queue.empty()) queue.pop_front();
    }
  }
  shutdown(to, SHUT_WR);
}

}  // namespace ft::testing
