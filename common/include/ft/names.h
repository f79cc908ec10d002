// Names and text that come from outside ftd: a peer, a control request, a libvirt domain, a
// config file. One rule for every name ftd builds a path, a file name or a QEMU id from, and
// one way to make any other outside text safe to store and log. docs/design.md, "Names from
// outside".
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "ft/status.h"

namespace ft {

// Longest name (a VM, a disk id, a snapshot, a node in a claim record).
inline constexpr size_t kMaxNameBytes = 64;

// The rule for every name: 1-64 characters from letters, digits, '_', '.', '-' (ASCII),
// starting with a letter or digit. So never "", ".", "..", a path ("a/b", "/x") or a control
// character: a valid name joined to a directory stays in that directory.
bool IsValidName(std::string_view name);

// OK if `value` is a valid name; otherwise InvalidArgument naming the field and the value
// (made printable): "field 'unprotect.vm': '../x' is not a valid name (1-64 ...)".
Status CheckName(std::string_view field, std::string_view value);

// `text` as it may be stored and logged: control characters (C0, DEL, C1, line separators,
// bidirectional overrides) and bytes that are not UTF-8 become \xNN, and at most `max_bytes`
// of the result are kept, cut at a character and marked "…(N bytes)" with N the original
// length.
std::string PrintableText(std::string_view text, size_t max_bytes);

// True if `text` is at most `max_bytes` and PrintableText would leave it unchanged.
bool IsPrintableText(std::string_view text, size_t max_bytes);

// A C0 control character or DEL.
inline bool IsControlCharacter(char c) {
  return static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) == 0x7f;
}

// The first control character in `text` (C0 or DEL), or npos: a value written as one line of
// a record (a config key, enabled.conf) must have none, or it could start a line of its own.
size_t FindControlCharacter(std::string_view text);

}  // namespace ft
