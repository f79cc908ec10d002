#include "ft/replay/qmp_message.h"

#include <algorithm>
#include <cstdio>

namespace ft::replay {
namespace {

std::string_view StripLineEnd(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  return line;
}

QmpMessage Malformed(std::string problem) {
  QmpMessage m;
  m.kind = QmpMessageKind::kMalformed;
  m.problem = std::move(problem);
  return m;
}

std::optional<QmpTimestamp> ParseTimestamp(const Json& object) {
  auto it = object.find("timestamp");
  if (it == object.end() || !it->is_object()) return std::nullopt;
  auto seconds = it->find("seconds");
  auto micros = it->find("microseconds");
  if (seconds == it->end() || micros == it->end() || !seconds->is_number_integer() ||
      !micros->is_number_integer()) {
    return std::nullopt;
  }
  return QmpTimestamp{seconds->get<int64_t>(), micros->get<int64_t>()};
}

}  // namespace

const char* QmpMessageKindName(QmpMessageKind kind) {
  switch (kind) {
    case QmpMessageKind::kGreeting:
      return "greeting";
    case QmpMessageKind::kReturn:
      return "return";
    case QmpMessageKind::kError:
      return "error";
    case QmpMessageKind::kEvent:
      return "event";
    case QmpMessageKind::kMalformed:
      return "malformed";
  }
  return "unknown";
}

std::optional<uint64_t> QmpMessage::numeric_id() const {
  if (id.is_number_unsigned()) return id.get<uint64_t>();
  if (id.is_number_integer() && id.get<int64_t>() >= 0)
    return static_cast<uint64_t>(id.get<int64_t>());
  return std::nullopt;
}

QmpMessage ParseQmpMessage(std::string_view line) {
  line = StripLineEnd(line);
  if (line.find_first_not_of(" \t") == std::string_view::npos) return Malformed("empty line");

  Json object;
  try {
    object = Json::parse(line);
  } catch (const Json::exception& e) {
    // Not only parse_error: a number too large for a double is out_of_range (found by
    // fuzz/qmp_line), and an uncaught one would end ftd.
    return Malformed(std::string("not JSON: ") + e.what());
  }
  if (!object.is_object())
    return Malformed(std::string("not an object but a JSON ") + object.type_name());

  QmpMessage m;
  if (auto id = object.find("id"); id != object.end()) m.id = *id;

  if (auto qmp = object.find("QMP"); qmp != object.end()) {
    if (!qmp->is_object()) return Malformed("'QMP' is not an object");
    m.kind = QmpMessageKind::kGreeting;
    m.value = *qmp;
    return m;
  }
  if (auto ret = object.find("return"); ret != object.end()) {
    m.kind = QmpMessageKind::kReturn;
    m.value = *ret;
    return m;
  }
  if (auto error = object.find("error"); error != object.end()) {
    if (!error->is_object()) return Malformed("'error' is not an object");
    auto cls = error->find("class");
    auto desc = error->find("desc");
    if (cls == error->end() || !cls->is_string()) return Malformed("'error' has no string 'class'");
    if (desc == error->end() || !desc->is_string())
      return Malformed("'error' has no string 'desc'");
    m.kind = QmpMessageKind::kError;
    m.error_class = cls->get<std::string>();
    m.error_desc = desc->get<std::string>();
    return m;
  }
  if (auto event = object.find("event"); event != object.end()) {
    if (!event->is_string()) return Malformed("'event' is not a string");
    m.kind = QmpMessageKind::kEvent;
    m.event = event->get<std::string>();
    if (auto data = object.find("data"); data != object.end()) {
      if (!data->is_object()) return Malformed("'data' of event " + m.event + " is not an object");
      m.value = *data;
    } else {
      m.value = Json::object();
    }
    m.timestamp = ParseTimestamp(object);
    return m;
  }
  return Malformed("no 'return', 'error', 'event' or 'QMP' key");
}

std::string SerializeQmpCommand(std::string_view command, const Json& arguments, uint64_t id) {
  Json object = Json::object();
  object["execute"] = std::string(command);
  if (!arguments.is_null() && !(arguments.is_object() && arguments.empty())) {
    object["arguments"] = arguments;
  }
  object["id"] = id;
  return object.dump(-1, ' ', false, Json::error_handler_t::replace) + "\r\n";
}

std::string AbbreviateQmpLine(std::string_view line, size_t max) {
  line = StripLineEnd(line);
  std::string out;
  out.reserve(std::min(line.size(), max) + 8);
  for (size_t i = 0; i < line.size() && i < max; ++i) {
    unsigned char c = static_cast<unsigned char>(line[i]);
    if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (line.size() > max) out += "...";
  return out;
}

}  // namespace ft::replay
