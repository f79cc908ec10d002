// A TCP relay on loopback that delays every byte by a fixed time in both directions: real
// sockets, real latency, for the logging channel's "injected latency" tests. Connections
// are relayed to `target_port` on 127.0.0.1. Threads; everything stops in the destructor.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ft/status.h"

namespace ft::testing {

class DelayProxy {
 public:
  // Listens on 127.0.0.1 of the calling thread's network namespace; relays to
  // target_host:target_port.
  static Result<std::unique_ptr<DelayProxy>> Start(uint16_t target_port,
                                                   std::chrono::milliseconds delay,
                                                   std::string target_host = "127.0.0.1");
  ~DelayProxy();
  uint16_t port() const { return port_; }
  uint64_t bytes_relayed() const { return bytes_; }

 private:
  DelayProxy() = default;
  void AcceptLoop();
  void Relay(int from, int to);

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  uint16_t target_port_ = 0;
  std::string target_host_;
  std::chrono::milliseconds delay_{0};
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> bytes_{0};
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace ft::testing
