// Frame codec of the logging channel, pure (no I/O): u32 big-endian payload length, u32
// big-endian CRC-32 of the payload, then the payload. docs/formats/logging-channel.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ft/status.h"

namespace ft::channel {

inline constexpr size_t kFrameHeaderBytes = 8;
using FrameHeader = std::array<char, kFrameHeaderBytes>;

FrameHeader EncodeFrameHeader(std::string_view payload);
// Header + payload in one string (tests and small frames).
std::string EncodeFrame(std::string_view payload);

// Splits a byte stream into frame payloads. Bytes go in with Prepare/Commit (read straight
// into the decoder's buffer) or Append; Next() yields whole, CRC-checked payloads. After an
// error the stream is desynchronized: the decoder keeps returning that error.
//
// The buffer grows with the bytes that arrive, never to the length a header announces: a
// header is the peer's word, and before the handshake the peer is anybody (issue 19: 400
// headers announcing 4 MiB each took 1 GiB).
class FrameDecoder {
 public:
  // `source` names the peer in error messages ("127.0.0.1:4000"). `limit_note` follows the
  // limit in the error for an oversized frame ("before authentication").
  FrameDecoder(uint32_t max_frame_bytes, std::string source, std::string limit_note = "");

  // Frames decoded from now on may be up to `max_frame_bytes` (the connection raises it
  // once the peer has authenticated).
  void SetMaxFrameBytes(uint32_t max_frame_bytes, std::string limit_note = "");
  uint32_t max_frame_bytes() const { return max_frame_bytes_; }

  // Returns at least `min_bytes` of writable space; Commit(n) after writing n bytes of it.
  std::pair<char*, size_t> Prepare(size_t min_bytes);
  void Commit(size_t n);
  void Append(std::string_view bytes);

  // The next whole payload (valid until the next call on the decoder), nullopt when more
  // bytes are needed, or kProtocol (length 0 or over the limit) / kDataLoss (CRC mismatch).
  Result<std::optional<std::string_view>> Next();

  uint64_t frames_decoded() const { return frames_; }
  size_t buffered_bytes() const { return end_ - begin_; }
  // Bytes the buffer holds allocated (what a connection costs while it reads).
  size_t capacity_bytes() const { return buf_.capacity(); }

 private:
  uint32_t max_frame_bytes_;
  std::string source_;
  std::string limit_note_;
  std::vector<char> buf_;
  size_t begin_ = 0, end_ = 0;
  uint64_t frames_ = 0;  // whole frames returned so far
  std::optional<Status> error_;
};

}  // namespace ft::channel
