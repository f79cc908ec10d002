// QEMU's stream netdev framing (net/stream.c, 7.2): every Ethernet frame is a u32 big-endian
// length followed by the frame. Pure: bytes in, frames out, so every malformed case is a
// unit test.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ft::net {

// QEMU refuses a longer frame (NET_BUFSIZE = 4096 + 65536) and drops the connection.
constexpr size_t kMaxFrameSize = 4096 + 65536;
// Destination MAC, source MAC and EtherType: anything shorter is not an Ethernet frame.
constexpr size_t kMinFrameSize = 14;

struct FramingCounters {
  uint64_t frames = 0;     // well-formed frames delivered
  uint64_t runts = 0;      // shorter than an Ethernet header: dropped
  uint64_t oversized = 0;  // longer than kMaxFrameSize: skipped, stream stays in step
  uint64_t bytes_skipped = 0;
};

class StreamFrameParser {
 public:
  // Consumes `bytes` (any split) and appends every complete, well-formed frame to `out`.
  // A frame that is too short or too long is counted and skipped: the length prefix still
  // says where the next frame starts, so the stream never loses step.
  void Feed(std::string_view bytes, std::vector<std::string>* out);
  const FramingCounters& counters() const { return counters_; }
  size_t pending() const { return pending_.size(); }

 private:
  std::string pending_;
  uint64_t skip_ = 0;  // bytes of an oversized frame still to skip
  FramingCounters counters_;
};

// `frame` with its u32 big-endian length in front, as QEMU reads it.
std::string EncodeStreamFrame(std::string_view frame);

}  // namespace ft::net
