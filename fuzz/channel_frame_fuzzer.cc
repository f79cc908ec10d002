// The logging channel's frame decoder (logging-channel/src/frame.h) on any byte stream, split
// any way, before authentication (4 KiB frames) and after (4 MiB, raised mid-stream like a
// connection does once the peer is authenticated). Properties:
//  - the decoded payloads, encoded again, are exactly the stream's prefix the decoder used;
//  - the split does not change what is decoded or the error;
//  - the buffer holds at most one partial frame after the decoder is drained, and its
//    allocation follows the bytes that arrived, never the length a header announces.
#include <optional>
#include <string>

#include "frame.h"
#include "fuzz_support.h"

namespace {

using ft::channel::FrameDecoder;
using ft::channel::kFrameHeaderBytes;

constexpr uint32_t kPreAuthLimit = 4096;      // Options::handshake_max_frame_bytes
constexpr uint32_t kSessionLimit = 4u << 20;  // Options::max_frame_bytes

struct Decoded {
  std::string reencoded;  // EncodeFrame of every payload, in order
  std::optional<ft::Status> error;
};

// `raise_after`: frames decoded before the limit goes up (the handshake's length).
Decoded Decode(const std::vector<std::string_view>& pieces, uint64_t raise_after,
               bool use_prepare) {
  FrameDecoder decoder(kPreAuthLimit, "fuzz", "before authentication");
  Decoded out;
  size_t peak_held = 0;  // most bytes the decoder held at once
  for (std::string_view piece : pieces) {
    if (use_prepare) {
      auto [p, n] = decoder.Prepare(piece.size());
      FT_FUZZ_CHECK(n >= piece.size());
      std::copy(piece.begin(), piece.end(), p);
      decoder.Commit(piece.size());
    } else {
      decoder.Append(piece);
    }
    // Before this piece it held one partial frame at most (checked below), so now at most
    // that and the piece: what arrived, never what a header announced.
    const size_t held = decoder.buffered_bytes();
    FT_FUZZ_CHECK(held < kFrameHeaderBytes + decoder.max_frame_bytes() + piece.size());
    peak_held = std::max(peak_held, held);
    while (true) {
      if (decoder.frames_decoded() >= raise_after && decoder.max_frame_bytes() != kSessionLimit) {
        decoder.SetMaxFrameBytes(kSessionLimit);
      }
      auto next = decoder.Next();
      if (!next.ok()) {
        out.error = next.status();
        return out;
      }
      if (!next->has_value()) break;
      FT_FUZZ_CHECK(!(*next)->empty());
      FT_FUZZ_CHECK((*next)->size() <= decoder.max_frame_bytes());
      out.reencoded += ft::channel::EncodeFrame(**next);
    }
    // Drained: what is left is one partial frame at most.
    FT_FUZZ_CHECK(decoder.buffered_bytes() < kFrameHeaderBytes + decoder.max_frame_bytes());
    // The allocation follows what was held (vector growth may double it), not announcements.
    FT_FUZZ_CHECK(decoder.capacity_bytes() <= 2 * peak_held);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint64_t raise_after = data[0] % 4;  // 0: authenticated from the start
  auto [sizes, stream] = ft::fuzz::TakeSplits(data + 1, size - 1);

  Decoded whole = Decode({stream}, raise_after, false);
  Decoded split = Decode(ft::fuzz::Split(stream, sizes), raise_after, true);

  FT_FUZZ_CHECK(stream.substr(0, whole.reencoded.size()) == whole.reencoded);
  FT_FUZZ_CHECK(whole.reencoded == split.reencoded);
  FT_FUZZ_CHECK(whole.error.has_value() == split.error.has_value());
  if (whole.error) {
    FT_FUZZ_CHECK(whole.error->code() == split.error->code());
  } else {
    // No error: everything not decoded is a partial frame.
    FT_FUZZ_CHECK(stream.size() - whole.reencoded.size() < kFrameHeaderBytes + kSessionLimit);
  }
  return 0;
}
