// Building record/replay log bytes by hand for tests: big-endian integers and kind bytes,
// as QEMU 7.2 writes them (docs/formats/rr-log.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ft/replay/rr_log.h"

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

// One event of every kind QEMU 7.2 writes, with payloads; the last one is END.
inline std::vector<std::string> EveryKind() {
  return {
      EncodeInstructionEvent(1000),
      K(rr::kInterrupt),
      K(rr::kException),
      K(rr::kAsyncBh) + U64(7),
      K(rr::kAsyncBhOneshot) + U64(8),
      K(rr::kAsyncInput) + U32(0) + U32(1) + U32(30) + std::string(1, 1),  // key, qcode
      K(rr::kAsyncInput) + U32(0) + U32(0) + U64(30) + Z(),                // key, number
      K(rr::kAsyncInput) + U32(1) + U32(2) + std::string(1, 1),            // button
      K(rr::kAsyncInput) + U32(3) + U32(0) + U64(500),                     // abs
      K(rr::kAsyncInputSync),
      K(rr::kAsyncCharRead) + Z() + U32(3) + "abc",
      K(rr::kAsyncBlock) + U64(42),
      K(rr::kAsyncNet) + Z() + U32(0) + U32(6) + "frame!",
      K(rr::kShutdown + 3),
      K(rr::kCharWrite) + U32(5) + U32(0),
      K(rr::kCharReadAll) + U32(2) + "hi",
      K(rr::kCharReadAllError) + U32(1),
      K(rr::kAudioOut) + U64(4),
      K(rr::kAudioIn) + U64(1) + U64(9) + U64(1) + U64(2),
      K(rr::kRandom) + U32(0) + U32(4) + "rand",
      K(rr::kClock) + U64(123456789),
      K(rr::kClock + 1) + U64(5),
      K(rr::kCheckpoint + 5),
      EncodeInstructionEvent(234),
      K(rr::kEnd),
  };
}

}  // namespace ft::replay::testing
