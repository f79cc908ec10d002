// The rules declared on string fields in proto/ft/proto/field_rules.proto, checked for a whole
// message from outside ftd (a PeerRequest, a ControlRequest) before ftd acts on it: names
// follow ft::IsValidName, free text is printable and bounded, other strings are bounded.
#pragma once

#include "ft/status.h"

namespace google::protobuf {
class Message;
}

namespace ft::proto {

// Walks every field that is set (and every required name, set or not) in `message` and the
// messages it holds. The first broken rule is InvalidArgument naming the field by its path
// ("unprotect.vm", "replica_begin.disk") and its value, made printable.
Status CheckFieldRules(const google::protobuf::Message& message);

}  // namespace ft::proto
