#include "ftctl_json.h"

#include <google/protobuf/util/json_util.h>

#include "ft/proto/control.pb.h"
#include "ft/proto/ftctl.pb.h"

namespace ft::cli {

Result<std::string> ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) {
    return Internal("protobuf's JSON printer failed on " + message.GetTypeName() + ": " +
                    std::string(status.message()));
  }
  // The printer ends an indented document with a newline; ftctl prints its own.
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void MakeList(const proto::ControlResponse& response,
              const std::map<std::string, std::string>& domains, const std::string& libvirt_error,
              proto::FtctlList* out) {
  out->set_node(response.node());
  *out->mutable_vms() = response.vms();
  for (const auto& [name, state] : domains) {
    bool on_ftd = false;
    for (const auto& vm : response.vms()) on_ftd = on_ftd || vm.name() == name;
    auto* d = out->add_libvirt_domains();
    d->set_name(name);
    d->set_state(state);
    d->set_ft(on_ftd ? "on this ftd" : "off");
  }
  out->set_libvirt_error(libvirt_error);
}

}  // namespace ft::cli
