// Handshake pieces of the logging channel, pure apart from the random nonce: the mac that
// proves the channel key, and the identity comparison whose refusal names field and values.
// docs/formats/logging-channel.md walks through the handshake.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ft/channel/session.h"
#include "ft/status.h"

namespace ft::proto {
class Hello;
}

namespace ft::channel {

inline constexpr uint32_t kProtocolVersion = 1;
inline constexpr size_t kNonceBytes = 32;
inline constexpr size_t kMacBytes = 32;
inline constexpr std::string_view kMacLabel = "ftd-channel-v1";

// Which end of the TCP connection computes a mac; part of the mac input, so a mac computed
// by one role is never valid for the other (no reflection).
enum class Role : char { kConnector = 'C', kAcceptor = 'A' };

// 32 bytes from the OpenSSL CSPRNG, or kInternal if it has no entropy.
Result<std::string> MakeNonce();

// HMAC-SHA256(key, "ftd-channel-v1" || role || own_nonce || peer_nonce ||
//             u32be(len) || own_hello_frame || u32be(len) || peer_hello_frame),
// where the hello frames are the exact ChannelFrame payload bytes as sent on the wire.
std::string HandshakeMac(std::string_view key, Role role, std::string_view own_nonce,
                         std::string_view peer_nonce, std::string_view own_hello_frame,
                         std::string_view peer_hello_frame);
// Constant-time comparison against the expected mac.
bool MacMatches(std::string_view expected, std::string_view received);

void FillHello(const Identity& self, std::string_view nonce, proto::Hello* hello);
Identity IdentityOf(const proto::Hello& hello);
// Ok if every string in `hello` is printable text within its bound (node and vm
// kMaxPeerNameBytes, digests and store id kMaxPeerDigestBytes); else kProtocol "sent a hello
// whose node name is not ...", showing the value made printable. Checked before anything of a
// hello is stored or logged: until the mac is verified it comes from anybody.
Status CheckHelloText(const proto::Hello& hello);

// The service an identity hello asks for is one this host serves, and names a VM exactly
// when it is a VM's log (after CheckHelloText). The acceptor's challenge states no identity.
Status CheckHelloService(const proto::Hello& hello);

// Ok if both sides agree on vm, failover, claim store (store_id: when both have failover on
// and the session is not peer control; see Identity), config digest, rr version, replica
// digest and epoch; else kFailedPrecondition with a sentence naming the field, both nodes and
// both values. The node names must differ.
Status CompareIdentities(const Identity& self, const Identity& peer);

// "3fa2c81d09e4…" for long digests, the digest itself when short.
std::string AbbreviateDigest(const std::string& digest);
std::string RrVersionHex(uint32_t v);

}  // namespace ft::channel
