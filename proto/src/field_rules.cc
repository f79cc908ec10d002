#include "ft/proto/field_rules.h"

#include <string>

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include "ft/names.h"
#include "ft/proto/field_rules.pb.h"

namespace ft::proto {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// True if the field declares a rule: only those are read (a replica chunk's 1 MiB `data`
// would otherwise be copied out for nothing).
bool HasRule(const FieldDescriptor& field) {
  const auto& options = field.options();
  return options.GetExtension(name_rule) != NOT_A_NAME || options.GetExtension(text_max) ||
         options.GetExtension(bytes_max);
}

Status CheckString(const FieldDescriptor& field, const std::string& path,
                   const std::string& value) {
  const auto& options = field.options();
  const NameRule rule = options.GetExtension(name_rule);
  if (rule == NAME_REQUIRED || (rule == NAME_OPTIONAL && !value.empty())) {
    if (Status s = CheckName(path, value); !s.ok()) return s;
  }
  if (uint32_t max = options.GetExtension(text_max); max && !IsPrintableText(value, max)) {
    return InvalidArgument(fmt::format("field '{}': '{}' is not printable text of at most {} bytes",
                                       path, PrintableText(value, 64), max));
  }
  if (uint64_t max = options.GetExtension(bytes_max); max && value.size() > max) {
    return InvalidArgument(
        fmt::format("field '{}': {} bytes, more than {} allowed", path, value.size(), max));
  }
  return Status::Ok();
}

Status CheckMessage(const Message& message, const std::string& prefix) {
  const auto* descriptor = message.GetDescriptor();
  const auto* reflection = message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor& field = *descriptor->field(i);
    const std::string path = prefix.empty() ? field.name() : prefix + "." + field.name();
    const bool is_string = field.cpp_type() == FieldDescriptor::CPPTYPE_STRING;
    if (is_string && !HasRule(field)) continue;
    if (field.is_repeated()) {
      const int n = reflection->FieldSize(message, &field);
      for (int k = 0; k < n; ++k) {
        const std::string item = fmt::format("{}[{}]", path, k);
        Status s = field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE
                       ? CheckMessage(reflection->GetRepeatedMessage(message, &field, k), item)
                   : is_string
                       ? CheckString(field, item, reflection->GetRepeatedString(message, &field, k))
                       : Status::Ok();
        if (!s.ok()) return s;
      }
      continue;
    }
    if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      // Only the messages that are there: the other commands of a oneof are not checked.
      if (!reflection->HasField(message, &field)) continue;
      if (Status s = CheckMessage(reflection->GetMessage(message, &field), path); !s.ok()) {
        return s;
      }
    } else if (is_string) {
      if (Status s = CheckString(field, path, reflection->GetString(message, &field)); !s.ok()) {
        return s;
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Status CheckFieldRules(const Message& message) { return CheckMessage(message, ""); }

}  // namespace ft::proto
