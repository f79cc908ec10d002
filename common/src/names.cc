#include "ft/names.h"

#include <cstdint>
#include <cstdio>

#include <fmt/format.h>

namespace ft {
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

std::string PrintableText(std::string_view text, size_t max_bytes) {
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

bool IsPrintableText(std::string_view text, size_t max_bytes) {
  return text.size() <= max_bytes && PrintableText(text, max_bytes) == text;
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) return false;
  const auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(name[0])) return false;
  for (char c : name) {
    if (!alnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

Status CheckName(std::string_view field, std::string_view value) {
  if (IsValidName(value)) return Status::Ok();
  return InvalidArgument(fmt::format(
      "field '{}': '{}' is not a valid name (1-{} letters, digits, '_', '.', '-', starting with "
      "a letter or digit)",
      field, PrintableText(value, kMaxNameBytes), kMaxNameBytes));
}

size_t FindControlCharacter(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (IsControlCharacter(text[i])) return i;
  }
  return std::string_view::npos;
}

}  // namespace ft
