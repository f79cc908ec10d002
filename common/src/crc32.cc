#include "ft/crc32.h"

#include <zlib.h>

namespace ft {

// zlib's CRC-32 is the same IEEE 802.3 polynomial (reflected 0xEDB88320, pre- and
// post-inverted) and runs several bytes per step: the logging channel checks every log
// byte and replica chunk with it, and a byte-at-a-time table loop was 41% of ftd's CPU
// while copying a disk replica (docs/benchmarks.md, "Disks").
uint32_t Crc32(const void* data, size_t size, uint32_t crc) {
  return static_cast<uint32_t>(crc32_z(crc, static_cast<const Bytef*>(data), size));
}

}  // namespace ft
