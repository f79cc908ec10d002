// QEMU's stream netdev framing as ftd reads it from the VM's NIC socket
// (vm-network/src/stream_framing.cc): any stream, split any way. Properties: the split changes
// neither the frames nor the counters; every frame is an Ethernet frame within QEMU's limit;
// while nothing was dropped, the frames re-encoded plus what is pending are the stream.
#include <string>
#include <vector>

#include "ft/net/stream_framing.h"
#include "fuzz_support.h"

using ft::net::StreamFrameParser;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto [sizes, stream] = ft::fuzz::TakeSplits(data, size);
  StreamFrameParser whole, split;
  std::vector<std::string> whole_frames, split_frames;
  whole.Feed(stream, &whole_frames);
  for (std::string_view piece : ft::fuzz::Split(stream, sizes)) split.Feed(piece, &split_frames);

  FT_FUZZ_CHECK(whole_frames == split_frames);
  FT_FUZZ_CHECK(whole.pending() == split.pending());
  const auto& a = whole.counters();
  const auto& b = split.counters();
  FT_FUZZ_CHECK(a.frames == b.frames && a.runts == b.runts && a.oversized == b.oversized &&
                a.bytes_skipped == b.bytes_skipped);
  FT_FUZZ_CHECK(a.frames == whole_frames.size());

  std::string reencoded;
  for (const auto& f : whole_frames) {
    FT_FUZZ_CHECK(f.size() >= ft::net::kMinFrameSize && f.size() <= ft::net::kMaxFrameSize);
    reencoded += ft::net::EncodeStreamFrame(f);
  }
  if (a.runts == 0 && a.oversized == 0) {
    FT_FUZZ_CHECK(reencoded.size() + whole.pending() == stream.size());
    FT_FUZZ_CHECK(stream.substr(0, reencoded.size()) == reencoded);
  }
  return 0;
}
