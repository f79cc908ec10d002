// CRC-32 (IEEE 802.3 / zlib polynomial), as the guest's services use for their records and
// stream lines.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ft {

uint32_t Crc32(const void* data, size_t size, uint32_t crc = 0);
inline uint32_t Crc32(std::string_view s) { return Crc32(s.data(), s.size()); }
// Continues a CRC over more bytes: Crc32Extend(Crc32(a), b) == Crc32(a + b).
inline uint32_t Crc32Extend(uint32_t crc, std::string_view s) {
  return Crc32(s.data(), s.size(), crc);
}

}  // namespace ft
