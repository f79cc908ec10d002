// Reading what `ftctl --json` prints (docs/formats/control-socket.md, "ftctl --json"):
// protobuf's JSON mapping of control.proto's messages, so an enum is its proto value's name
// ("VM_FT_STATE_PROTECTED"), a 64-bit integer is a string ("3") and a block that is not set
// (nic, failover, reprotect, newest_claim, peer_steps) is no key at all.
#pragma once

#include <cstdint>
#include <string>

#include <google/protobuf/generated_enum_reflection.h>
#include <nlohmann/json.hpp>

#include "ft/proto/control.pb.h"

namespace ft::testing {

// What ftctl prints for an enum value, from the generated descriptor:
// ProtoName(proto::VM_FT_STATE_PROTECTED) is "VM_FT_STATE_PROTECTED".
template <typename E>
std::string ProtoName(E value) {
  static_assert(google::protobuf::is_proto_enum<E>::value, "a protobuf enum");
  const auto* v = google::protobuf::GetEnumDescriptor<E>()->FindValueByNumber(value);
  return v ? v->name() : std::to_string(static_cast<int>(value));
}

// The 64-bit integer `key` of `obj` (printed as a string; a number is taken too); `absent`
// when `obj` is no object, has no such key, or the value is no integer.
uint64_t U64(const nlohmann::json& obj, const std::string& key, uint64_t absent = 0);
int64_t I64(const nlohmann::json& obj, const std::string& key, int64_t absent = 0);

// obj[key] when it is an object (a block that is set), else null.
const nlohmann::json& Block(const nlohmann::json& obj, const std::string& key);

}  // namespace ft::testing
