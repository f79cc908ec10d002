// What the channel allows a peer that has not authenticated yet, pure (no I/O): its text made
// safe to store and log. docs/formats/logging-channel.md, "Before authentication".
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ft::channel {

// Longest node or vm name a Hello may carry (a config's names are 1-64 characters).
inline constexpr size_t kMaxPeerNameBytes = 64;
// Longest digest or store id a Hello may carry (ftd sends 64 hex digits).
inline constexpr size_t kMaxPeerDigestBytes = 128;
// A refusal's reason is shown up to this many bytes.
inline constexpr size_t kMaxRefusalReasonBytes = 1024;

// `text` as it may be stored and logged: control characters (C0, DEL, C1) and bytes that are
// not UTF-8 become \xNN, and at most `max_bytes` of the result are kept, cut at a character
// and marked "…(N bytes)" with N the original length.
std::string PrintablePeerText(std::string_view text, size_t max_bytes);

// True if `text` is at most `max_bytes` and PrintablePeerText would leave it unchanged.
bool IsPrintablePeerText(std::string_view text, size_t max_bytes);

}  // namespace ft::channel
