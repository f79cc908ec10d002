// What the fuzz targets share: quiet loggers, a check that aborts (a finding) with a message,
// and splitting one input into chunks the way a socket could deliver it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "ft/log.h"

namespace ft::fuzz {

// Parsers log what they refuse; a fuzzer refuses millions of inputs. FTD_FUZZ_LOG=debug shows
// the logs when replaying one input.
inline void QuietLogs() {
  const char* level = std::getenv("FTD_FUZZ_LOG");
  SetLogLevel(level ? level : "off");
}

// A property that does not hold is a finding: libFuzzer saves the input on abort.
#define FT_FUZZ_CHECK(cond)                                                            \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

// Splits `data` into pieces whose sizes come from `sizes` (1..256 bytes each, cycled), so
// every way a stream can arrive gets tried: one byte at a time, a header split, all at once.
inline std::vector<std::string_view> Split(std::string_view data, std::string_view sizes) {
  std::vector<std::string_view> pieces;
  size_t i = 0;
  while (!data.empty()) {
    size_t n = sizes.empty() ? data.size() : 1 + static_cast<uint8_t>(sizes[i++ % sizes.size()]);
    n = std::min(n, data.size());
    pieces.push_back(data.substr(0, n));
    data.remove_prefix(n);
  }
  return pieces;
}

// The first byte of an input chooses the splits: 0 = all at once, else that many bytes of
// split sizes follow; the rest is the stream.
struct SplitInput {
  std::string_view sizes, stream;
};
inline SplitInput TakeSplits(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (in.empty()) return {};
  size_t n = std::min<size_t>(static_cast<uint8_t>(in[0]) % 16, in.size() - 1);
  return {in.substr(1, n), in.substr(1 + n)};
}

}  // namespace ft::fuzz
