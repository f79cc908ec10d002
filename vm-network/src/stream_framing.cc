#include "ft/net/stream_framing.h"

#include <algorithm>

namespace ft::net {

void StreamFrameParser::Feed(std::string_view bytes, std::vector<std::string>* out) {
  while (!bytes.empty()) {
    if (skip_ > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(skip_, bytes.size()));
      skip_ -= n;
      counters_.bytes_skipped += n;
      bytes.remove_prefix(n);
      continue;
    }
    pending_.append(bytes);
    bytes = {};
    size_t at = 0;
    while (pending_.size() - at >= 4) {
      auto b = reinterpret_cast<const unsigned char*>(pending_.data() + at);
      uint32_t len = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
      if (len > kMaxFrameSize) {
        ++counters_.oversized;
        at += 4;
        size_t here = std::min<size_t>(len, pending_.size() - at);
        at += here;
        counters_.bytes_skipped += here;
        skip_ = len - here;
        if (skip_ > 0) break;
        continue;
      }
      if (pending_.size() - at - 4 < len) break;
      if (len < kMinFrameSize) {
        ++counters_.runts;
      } else {
        ++counters_.frames;
        out->emplace_back(pending_, at + 4, len);
      }
      at += 4 + len;
    }
    pending_.erase(0, at);  // an unfinished oversized frame consumed all of it
  }
}

std::string EncodeStreamFrame(std::string_view frame) {
  std::string out;
  out.reserve(frame.size() + 4);
  auto len = static_cast<uint32_t>(frame.size());
  out.push_back(static_cast<char>(len >> 24));
  out.push_back(static_cast<char>(len >> 16));
  out.push_back(static_cast<char>(len >> 8));
  out.push_back(static_cast<char>(len));
  out.append(frame);
  return out;
}

}  // namespace ft::net
