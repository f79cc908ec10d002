#include "frame.h"

#include <cstdio>
#include <cstring>

#include "ft/crc32.h"

namespace ft::channel {
namespace {

void PutU32(char* p, uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}

uint32_t GetU32(const char* p) {
  auto b = [p](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(p[i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

std::string Hex32(uint32_t v) {
  char s[16];
  std::snprintf(s, sizeof s, "0x%08x", v);
  return s;
}

}  // namespace

FrameHeader EncodeFrameHeader(std::string_view payload) {
  FrameHeader h;
  PutU32(h.data(), static_cast<uint32_t>(payload.size()));
  PutU32(h.data() + 4, Crc32(payload));
  return h;
}

std::string EncodeFrame(std::string_view payload) {
  FrameHeader h = EncodeFrameHeader(payload);
  std::string out(h.data(), h.size());
  out.append(payload);
  return out;
}

FrameDecoder::FrameDecoder(uint32_t max_frame_bytes, std::string source, std::string limit_note)
    : max_frame_bytes_(max_frame_bytes),
      source_(std::move(source)),
      limit_note_(std::move(limit_note)) {}

void FrameDecoder::SetMaxFrameBytes(uint32_t max_frame_bytes, std::string limit_note) {
  max_frame_bytes_ = max_frame_bytes;
  limit_note_ = std::move(limit_note);
}

std::pair<char*, size_t> FrameDecoder::Prepare(size_t min_bytes) {
  if (buf_.size() - end_ < min_bytes) {
    // Move the unread tail to the front first; grow only if that is not enough.
    if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < min_bytes) buf_.resize(end_ + min_bytes);
  }
  return {buf_.data() + end_, buf_.size() - end_};
}

void FrameDecoder::Commit(size_t n) {
  assert(n <= buf_.size() - end_);
  end_ += n;
}

void FrameDecoder::Append(std::string_view bytes) {
  // Nothing to copy; on a fresh decoder Prepare(0) gives no buffer, and memcpy from or to a
  // null pointer is undefined even for 0 bytes (found by fuzz/channel_frame).
  if (bytes.empty()) return;
  auto [p, n] = Prepare(bytes.size());
  (void)n;
  std::memcpy(p, bytes.data(), bytes.size());
  Commit(bytes.size());
}

Result<std::optional<std::string_view>> FrameDecoder::Next() {
  if (error_) return *error_;
  const size_t avail = end_ - begin_;
  if (avail < kFrameHeaderBytes) {
    if (avail == 0) begin_ = end_ = 0;
    return std::optional<std::string_view>();
  }
  const char* h = buf_.data() + begin_;
  const uint32_t length = GetU32(h);
  const std::string which = "frame " + std::to_string(frames_ + 1) + " from " + source_ + ": ";
  if (length == 0) {
    error_ = ProtocolError(which + "zero length (a frame always carries a message)");
    return *error_;
  }
  if (length > max_frame_bytes_) {
    const std::string note = limit_note_.empty() ? "" : " " + limit_note_;
    error_ = ProtocolError(which + "length " + std::to_string(length) +
                           " bytes exceeds the limit of " + std::to_string(max_frame_bytes_) +
                           note + " (corrupt stream or not an ftd channel)");
    return *error_;
  }
  // A partial frame: wait for more. The buffer grows as its bytes arrive (Prepare), not to
  // the announced length now: the length is the peer's claim, not bytes it has sent.
  if (avail < kFrameHeaderBytes + length) return std::optional<std::string_view>();
  std::string_view payload(buf_.data() + begin_ + kFrameHeaderBytes, length);
  const uint32_t want = GetU32(buf_.data() + begin_ + 4);
  const uint32_t got = Crc32(payload);
  if (want != got) {
    error_ =
        DataLoss(which + "CRC mismatch (header says " + Hex32(want) + ", payload of " +
                 std::to_string(length) + " bytes has " + Hex32(got) + "): the stream is corrupt");
    return *error_;
  }
  begin_ += kFrameHeaderBytes + length;
  ++frames_;
  return std::optional<std::string_view>(payload);
}

}  // namespace ft::channel
