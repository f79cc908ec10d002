// What a listener allows a peer that has not authenticated yet, pure (no I/O, no clock of its
// own): a cap on handshakes in progress, and one log line per interval for a flood of them.
// Its text is made safe to store and log by ft::PrintableText (ft/names.h).
// docs/formats/logging-channel.md, "Before authentication".
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "ft/names.h"

namespace ft::channel {

// Longest node or vm name a Hello may carry (a config's names are 1-64 characters).
inline constexpr size_t kMaxPeerNameBytes = 64;
// Longest digest or store id a Hello may carry (ftd sends 64 hex digits).
inline constexpr size_t kMaxPeerDigestBytes = 128;
// A refusal's reason is shown up to this many bytes.
inline constexpr size_t kMaxRefusalReasonBytes = 1024;

// Handshakes in progress on one listener: at most `total`, and at most `per_address` from one
// source address. When all are taken, a connection from an address that holds fewer than the
// busiest address evicts that address's oldest handshake, so a flood from a few addresses
// cannot keep a real peer out; a flood from `total` addresses or more can, for as long as its
// handshakes last (the handshake deadline).
class HandshakeSlots {
 public:
  struct Limits {
    size_t total = 64;
    size_t per_address = 8;
  };
  enum class Verdict {
    kAdmitted,
    kTooManyFromAddress,  // refused: `per_address` from this address already
    kFull,                // refused: `total` in progress, none to evict
  };
  struct Decision {
    Verdict verdict = Verdict::kAdmitted;
    std::optional<uint64_t> evicted;  // a handshake to close now (its slot is released)
  };

  explicit HandshakeSlots(Limits limits) : limits_(limits) {}

  // Asks for a slot for handshake `id` (ids increase: a smaller one is older) from `address`.
  Decision Admit(uint64_t id, const std::string& address);
  // The handshake ended (authenticated, failed or evicted). Unknown ids are ignored.
  void Release(uint64_t id);

  size_t in_progress() const { return address_of_.size(); }
  size_t from(const std::string& address) const;
  const Limits& limits() const { return limits_; }

 private:
  Limits limits_;
  std::map<uint64_t, std::string> address_of_;
  std::map<std::string, std::set<uint64_t>> by_address_;
};

// One warning per interval for connections that were dropped before they authenticated: the
// first after a quiet interval is logged in full at once; the rest are counted by kind and
// summed up at the end of the interval, with the last one's reason.
class DroppedPeerReport {
 public:
  using Clock = std::chrono::steady_clock;
  explicit DroppedPeerReport(std::chrono::milliseconds interval) : interval_(interval) {}

  struct Noted {
    std::optional<std::string> line_now;           // log this now
    std::optional<Clock::time_point> summary_due;  // call Summary() at this time
  };
  // `kind` counts it ("timed out in the handshake"); `line` is the full line for it.
  Noted Note(Clock::time_point now, const std::string& kind, const std::string& line);
  // The summary of what was counted since the last line, or nullopt if nothing was; starts a
  // new interval when it returns a line.
  std::optional<std::string> Summary(Clock::time_point now);

  uint64_t total_dropped() const { return total_; }

 private:
  std::chrono::milliseconds interval_;
  std::optional<Clock::time_point> last_line_;
  bool summary_pending_ = false;
  std::map<std::string, uint64_t> counts_;
  uint64_t suppressed_ = 0, total_ = 0;
  std::string last_;
};

}  // namespace ft::channel
