// Captures the Ethernet frames one MAC address sends, on an interface inside a network
// namespace, with kernel receive timestamps on CLOCK_MONOTONIC (steady_clock's). Only frames
// the interface receives are kept, never those sent out of it: on the lab client's `eth0`,
// the VM's frames that reached the client; on a switch port (`a-vm`, `b-vm` in the switch
// namespace), the frames the host behind that port put on the network, not those the switch
// flooded towards it. Tests use it to check, from outside ftd, when a frame of the VM reached
// the client and which host sent it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ft/status.h"

namespace ft::testing {

struct CapturedFrame {
  int64_t received_ns = 0;  // CLOCK_MONOTONIC
  uint64_t fnv64 = 0;       // net::FrameHash, as in ftd's FTD_TRACE_GATE
  size_t size = 0;
};

class FrameCapture {
 public:
  // `source_mac` like "52:54:00:12:34:56": only frames from it are kept.
  static Result<std::unique_ptr<FrameCapture>> Start(const std::string& netns,
                                                     const std::string& ifname,
                                                     const std::string& source_mac);
  ~FrameCapture();
  void Stop();
  std::vector<CapturedFrame> frames();

 private:
  FrameCapture() = default;
  void Loop();

  int fd_ = -1;
  unsigned char mac_[6] = {};
  int64_t realtime_minus_monotonic_ns_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<CapturedFrame> frames_;
  std::thread thread_;
};

}  // namespace ft::testing
