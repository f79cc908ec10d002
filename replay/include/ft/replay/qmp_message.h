// QMP wire format, without I/O: classify one line from QEMU's monitor and build command lines.
// QEMU (pretty=off, the default) writes one JSON object per line, terminated by "\r\n".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ft::replay {

using Json = nlohmann::json;

enum class QmpMessageKind {
  kGreeting,   // {"QMP": {"version": ..., "capabilities": [...]}}
  kReturn,     // {"return": VALUE, "id": ID}
  kError,      // {"error": {"class": CLASS, "desc": DESC}, "id": ID}
  kEvent,      // {"event": NAME, "data": {...}, "timestamp": {"seconds": S, "microseconds": US}}
  kMalformed,  // anything else; `problem` says what was wrong
};

const char* QmpMessageKindName(QmpMessageKind kind);

struct QmpTimestamp {
  int64_t seconds = 0;
  int64_t microseconds = 0;
};

struct QmpMessage {
  QmpMessageKind kind = QmpMessageKind::kMalformed;
  // kReturn / kError: the "id" QEMU echoed back; null when the message has none (QEMU omits it
  // when it could not parse the command, or when the command carried no id).
  Json id;
  // kGreeting: the object under "QMP". kReturn: the "return" value. kEvent: "data", or an empty
  // object when the event has none (STOP, RESUME, ...), so handlers can call data.value(...).
  Json value;
  std::string error_class;                // kError
  std::string error_desc;                 // kError
  std::string event;                      // kEvent: the event name, e.g. "STOP"
  std::optional<QmpTimestamp> timestamp;  // kEvent, when present and well-formed
  std::string problem;                    // kMalformed: e.g. "not JSON: ...", "not an object"

  // The id as a number, if it is a non-negative integer (the only kind QmpClient sends).
  std::optional<uint64_t> numeric_id() const;
};

// Parses one line (with or without its trailing "\r\n" or "\n"). Never throws.
QmpMessage ParseQmpMessage(std::string_view line);

// {"execute": NAME, "arguments": {...}, "id": ID} + "\r\n". `arguments` is omitted when it is
// null or an empty object (QEMU treats both the same). Invalid UTF-8 in strings is replaced
// with U+FFFD rather than throwing.
std::string SerializeQmpCommand(std::string_view command, const Json& arguments, uint64_t id);

// Shortens a line for log lines and error messages: at most `max` bytes, then "...".
std::string AbbreviateQmpLine(std::string_view line, size_t max = 200);

}  // namespace ft::replay
