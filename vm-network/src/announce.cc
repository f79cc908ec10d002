#include "ft/net/announce.h"

#include <cstdio>

#include <fmt/format.h>

namespace ft::net {
namespace {

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeArp = 0x0806;
constexpr uint16_t kEtherTypeRarp = 0x8035;
constexpr size_t kEthHeader = 14;
constexpr size_t kMinEthernetFrame = 60;  // without FCS

uint16_t Be16(std::string_view b, size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(b[at]) << 8) |
                               static_cast<uint8_t>(b[at + 1]));
}
uint32_t Be32(std::string_view b, size_t at) {
  return (uint32_t{static_cast<uint8_t>(b[at])} << 24) |
         (uint32_t{static_cast<uint8_t>(b[at + 1])} << 16) |
         (uint32_t{static_cast<uint8_t>(b[at + 2])} << 8) |
         uint32_t{static_cast<uint8_t>(b[at + 3])};
}
bool SameMac(std::string_view b, size_t at, const MacAddress& mac) {
  for (size_t i = 0; i < 6; ++i) {
    if (static_cast<uint8_t>(b[at + i]) != mac[i]) return false;
  }
  return true;
}
void PutMac(std::string& out, const MacAddress& mac) {
  for (uint8_t c : mac) out += static_cast<char>(c);
}
void Put16(std::string& out, uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}
void Put32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

// Ethernet broadcast header + an ARP/RARP body for IPv4 over Ethernet.
std::string ArpFrame(uint16_t ether_type, uint16_t op, const MacAddress& mac, uint32_t sender_ip,
                     const MacAddress& target_mac, uint32_t target_ip) {
  std::string f;
  PutMac(f, MacAddress{0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
  PutMac(f, mac);
  Put16(f, ether_type);
  Put16(f, 1);       // hardware: Ethernet
  Put16(f, 0x0800);  // protocol: IPv4
  f += static_cast<char>(6);
  f += static_cast<char>(4);
  Put16(f, op);
  PutMac(f, mac);
  Put32(f, sender_ip);
  PutMac(f, target_mac);
  Put32(f, target_ip);
  f.resize(kMinEthernetFrame, '\0');
  return f;
}

}  // namespace

std::optional<MacAddress> ParseMac(std::string_view text) {
  MacAddress mac{};
  if (text.size() != 17) return std::nullopt;
  for (size_t i = 0; i < 6; ++i) {
    if (i > 0 && text[i * 3 - 1] != ':') return std::nullopt;
    unsigned v = 0;
    for (size_t j = 0; j < 2; ++j) {
      char c = text[i * 3 + j];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<unsigned>(c - 'A' + 10);
      } else {
        return std::nullopt;
      }
    }
    mac[i] = static_cast<uint8_t>(v);
  }
  return mac;
}

std::string Ipv4ToString(uint32_t a) {
  return fmt::format("{}.{}.{}.{}", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}

std::optional<uint32_t> GuestIpv4From(std::string_view frame, const MacAddress& mac) {
  if (frame.size() < kEthHeader || !SameMac(frame, 6, mac)) return std::nullopt;
  uint16_t type = Be16(frame, 12);
  uint32_t ip = 0;
  if (type == kEtherTypeArp) {
    // htype, ptype, hlen, plen, op, sha[6], spa[4]
    if (frame.size() < kEthHeader + 28 || Be16(frame, kEthHeader + 2) != 0x0800 ||
        !SameMac(frame, kEthHeader + 8, mac)) {
      return std::nullopt;
    }
    ip = Be32(frame, kEthHeader + 14);
  } else if (type == kEtherTypeIpv4) {
    if (frame.size() < kEthHeader + 20 || (static_cast<uint8_t>(frame[kEthHeader]) >> 4) != 4) {
      return std::nullopt;
    }
    ip = Be32(frame, kEthHeader + 12);
  } else {
    return std::nullopt;
  }
  if (ip == 0) return std::nullopt;
  return ip;
}

std::string GratuitousArp(const MacAddress& mac, uint32_t ip) {
  return ArpFrame(kEtherTypeArp, /*request*/ 1, mac, ip, MacAddress{}, ip);
}

std::string RarpAnnounce(const MacAddress& mac) {
  return ArpFrame(kEtherTypeRarp, /*reverse request*/ 3, mac, 0, mac, 0);
}

}  // namespace ft::net
