// Taking over a VM's network on a new host (failover, design rule 3): the switch still sends
// the VM's frames to the old host's port until it sees the VM's MAC on the new one. The new
// primary announces it the way a migrated VM does: a gratuitous ARP for the guest's IPv4
// address (learnt from the guest's own frames), or QEMU's RARP announce when no address was
// seen. Pure: bytes in, bytes out.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ft::net {

using MacAddress = std::array<uint8_t, 6>;

// "52:54:00:12:34:56" -> bytes; nullopt if malformed.
std::optional<MacAddress> ParseMac(std::string_view text);
// 0x0a4d000a -> "10.77.0.10"
std::string Ipv4ToString(uint32_t address);

// The IPv4 address the guest uses as its own, from one frame it sent (source MAC `mac`): the
// sender address of an ARP packet or the source of an IPv4 packet. nullopt for anything else,
// and for 0.0.0.0 (DHCP) and other frames.
std::optional<uint32_t> GuestIpv4From(std::string_view frame, const MacAddress& mac);

// A gratuitous ARP request (broadcast, sender = target = `ip`), padded to 60 bytes.
std::string GratuitousArp(const MacAddress& mac, uint32_t ip);
// QEMU's self-announce: a broadcast RARP request from `mac`, padded to 60 bytes.
std::string RarpAnnounce(const MacAddress& mac);

}  // namespace ft::net
