// ftctl's --json output: every document is protobuf's JSON printer's rendering of one message
// (control.proto's, or ftctl.proto's for what the control socket has no message for). The
// format is docs/formats/control-socket.md's "ftctl --json". Protobuf's headers stay in the .cc.
#pragma once

#include <map>
#include <string>

#include "ft/status.h"

namespace google::protobuf {
class Message;
}
namespace ft::proto {
class ControlResponse;
class FtctlList;
}  // namespace ft::proto

namespace ft::cli {

// `message` as ftctl prints it: protobuf's JSON mapping (MessageToJsonString) with the field
// names as keys (snake_case), every scalar field even when 0 or "" (and every repeated one,
// [] when empty), enums by value name ("VM_FT_STATE_PROTECTED"), 64-bit integers as strings
// ("3"), a sub-message that is not set left out; indented, no trailing newline.
Result<std::string> ToJson(const google::protobuf::Message& message);

// `ftctl list`'s document: the node and its VMs from ftd's answer, then every libvirt domain
// (`domains`: name -> "running" / "shut off") with "on this ftd" or "off", and why libvirt
// could not be read ("" when it could).
void MakeList(const proto::ControlResponse& response,
              const std::map<std::string, std::string>& domains, const std::string& libvirt_error,
              proto::FtctlList* out);

}  // namespace ft::cli
