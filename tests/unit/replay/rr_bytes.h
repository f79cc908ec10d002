// Building record/replay log bytes by hand for tests: big-endian integers and kind bytes,
// as QEMU 7.2 writes them (docs/formats/rr-log.md).
#pragma once

#include <cstdint>
#include <string>

namespace ft::replay::testing {

inline std::string U32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
  return s;
}
inline std::string U64(uint64_t v) {
  return U32(static_cast<uint32_t>(v >> 32)) + U32(static_cast<uint32_t>(v));
}
inline std::string Z() { return std::string(1, 0); }
inline std::string K(uint8_t kind) { return std::string(1, static_cast<char>(kind)); }

}  // namespace ft::replay::testing
