#include "preauth.h"

#include <cstdio>

namespace ft::channel {
namespace {

void AppendEscaped(std::string& out, std::string_view bytes) {
  for (unsigned char b : bytes) {
    char s[8];
    std::snprintf(s, sizeof s, "\\x%02x", b);
    out += s;
  }
}

// Length of the UTF-8 sequence at the start of `s` and its code point, or 0 if it is not
// well-formed (overlong, surrogate, past U+10FFFF, truncated).
size_t Utf8Sequence(std::string_view s, uint32_t& cp) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = b(0);
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    n = 2;
    cp = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    n = 3;
    cp = lead & 0x0f;
    if (lead == 0xe0) lo = 0xa0;
    if (lead == 0xed) hi = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    n = 4;
    cp = lead & 0x07;
    if (lead == 0xf0) lo = 0x90;
    if (lead == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (s.size() < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    const unsigned char c = b(i);
    if (c < (i == 1 ? lo : 0x80) || c > (i == 1 ? hi : 0xbf)) return 0;
    cp = cp << 6 | (c & 0x3f);
  }
  return n;
}

// C1 controls, line/paragraph separators and bidirectional overrides: characters that can
// make a log line say something other than what it holds.
bool IsControlCodePoint(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0x200e ||
         cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

}  // namespace

std::string PrintablePeerText(std::string_view text, size_t max_bytes) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    std::string piece;
    const unsigned char c = static_cast<unsigned char>(text[i]);
    size_t n = 1;
    if (c < 0x20 || c == 0x7f) {
      AppendEscaped(piece, text.substr(i, 1));
    } else if (c < 0x80) {
      piece.push_back(static_cast<char>(c));
    } else {
      uint32_t cp = 0;
      n = Utf8Sequence(text.substr(i), cp);
      if (n == 0) {
        n = 1;
        AppendEscaped(piece, text.substr(i, 1));
      } else if (IsControlCodePoint(cp)) {
        AppendEscaped(piece, text.substr(i, n));
      } else {
        piece.assign(text.substr(i, n));
      }
    }
    if (out.size() + piece.size() > max_bytes) {
      return out + "…(" + std::to_string(text.size()) + " bytes)";
    }
    out += piece;
    i += n;
  }
  return out;
}

bool IsPrintablePeerText(std::string_view text, size_t max_bytes) {
  return text.size() <= max_bytes && PrintablePeerText(text, max_bytes) == text;
}

HandshakeSlots::Decision HandshakeSlots::Admit(uint64_t id, const std::string& address) {
  Decision d;
  const size_t mine = from(address);
  if (mine >= limits_.per_address) {
    d.verdict = Verdict::kTooManyFromAddress;
    return d;
  }
  if (in_progress() >= limits_.total) {
    // Evict from the busiest address, if it holds more than this one will.
    const std::set<uint64_t>* busiest = nullptr;
    for (const auto& [_, ids] : by_address_) {
      if (!busiest || ids.size() > busiest->size()) busiest = &ids;
    }
    if (!busiest || busiest->size() <= mine + 1) {
      d.verdict = Verdict::kFull;
      return d;
    }
    d.evicted = *busiest->begin();
    Release(*d.evicted);
  }
  address_of_.emplace(id, address);
  by_address_[address].insert(id);
  return d;
}

void HandshakeSlots::Release(uint64_t id) {
  auto it = address_of_.find(id);
  if (it == address_of_.end()) return;
  auto a = by_address_.find(it->second);
  a->second.erase(id);
  if (a->second.empty()) by_address_.erase(a);
  address_of_.erase(it);
}

size_t HandshakeSlots::from(const std::string& address) const {
  auto it = by_address_.find(address);
  return it == by_address_.end() ? 0 : it->second.size();
}

DroppedPeerReport::Noted DroppedPeerReport::Note(Clock::time_point now, const std::string& kind,
                                                 const std::string& line) {
  ++total_;
  Noted noted;
  if (!summary_pending_ && (!last_line_ || now - *last_line_ >= interval_)) {
    last_line_ = now;
    noted.line_now = line;
    return noted;
  }
  ++counts_[kind];
  ++suppressed_;
  last_ = line;
  if (!summary_pending_) {
    summary_pending_ = true;
    noted.summary_due = *last_line_ + interval_;
  }
  return noted;
}

std::optional<std::string> DroppedPeerReport::Summary(Clock::time_point now) {
  summary_pending_ = false;
  if (suppressed_ == 0) return std::nullopt;
  const auto seconds =
      std::chrono::duration_cast<std::chrono::milliseconds>(now - *last_line_).count() / 1000.0;
  char span[32];
  std::snprintf(span, sizeof span, "%.1f", seconds);
  std::string line = std::to_string(suppressed_) + " more connection" +
                     (suppressed_ == 1 ? "" : "s") + " dropped before authenticating in the last " +
                     span + " s (";
  bool first = true;
  for (const auto& [kind, n] : counts_) {
    line += (first ? "" : ", ") + std::to_string(n) + " " + kind;
    first = false;
  }
  line += "); the last: " + last_;
  counts_.clear();
  suppressed_ = 0;
  last_.clear();
  last_line_ = now;
  return line;
}

}  // namespace ft::channel
