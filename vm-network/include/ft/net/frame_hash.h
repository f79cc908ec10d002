// The hash that names an Ethernet frame in ftd's gate trace (FTD_TRACE_GATE): FNV-1a 64 over
// the whole frame. Tests hash the frames they capture with the same function to match them.
#pragma once

#include <cstdint>
#include <string_view>

namespace ft::net {

inline uint64_t FrameHash(std::string_view frame) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : frame) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace ft::net
