#include "ft/domain/vm_spec.h"
#include "ft/names.h"

#include <cctype>
#include <set>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace ft::domain {

bool IsValidMac(const std::string& mac) {
  if (mac.size() != 17) return false;
  for (size_t i = 0; i < mac.size(); ++i) {
    if (i % 3 == 2) {
      if (mac[i] != ':') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(mac[i]))) {
      return false;
    }
  }
  // The least significant bit of the first octet marks multicast: not a NIC address.
  return (std::stoi(mac.substr(0, 2), nullptr, 16) & 1) == 0;
}

const char* DiskBusName(DiskBus bus) { return bus == DiskBus::kVirtio ? "virtio" : "ide"; }

const char* NicBackendName(NicBackend backend) {
  switch (backend) {
    case NicBackend::kUser:
      return "user";
    case NicBackend::kStream:
      return "stream";
    case NicBackend::kTap:
      return "tap";
    case NicBackend::kBridge:
      return "bridge";
  }
  return "?";
}

Status ValidateVmSpec(const VmSpec& spec) {
  if (!ft::IsValidName(spec.name)) {
    return InvalidArgument(fmt::format(
        "vm name '{}' is not valid: use 1-64 letters, digits, '_', '.', '-', starting with a "
        "letter or digit",
        PrintableText(spec.name, kMaxNameBytes)));
  }
  auto vm = fmt::format("vm '{}'", spec.name);
  // Each value is one line wherever it is written ([vm] sections, enabled.conf, QEMU's
  // command line): a newline in it could start a line of its own ("# role: primary").
  std::vector<std::pair<std::string, const std::string*>> values = {{"kernel", &spec.kernel},
                                                                    {"initrd", &spec.initrd},
                                                                    {"cmdline", &spec.cmdline},
                                                                    {"qemu", &spec.qemu_binary}};
  for (const auto& disk : spec.disks) values.emplace_back("disk." + disk.id, &disk.path);
  if (spec.nic) {
    values.emplace_back("nic_socket", &spec.nic->socket_path);
    values.emplace_back("tap", &spec.nic->tap_name);
    values.emplace_back("bridge", &spec.nic->bridge);
  }
  for (const auto& [key, value] : values) {
    if (size_t at = FindControlCharacter(*value); at != std::string::npos) {
      return InvalidArgument(
          fmt::format("{}: {} has a control character ({} at byte {}): a value must be one line of "
                      "printable text",
                      vm, key, PrintableText(value->substr(at, 1), 8), at));
    }
  }
  if (spec.memory_mib < 64 || spec.memory_mib > 65536) {
    return InvalidArgument(
        fmt::format("{}: memory_mib {} is out of range 64..65536", vm, spec.memory_mib));
  }
  if (spec.kernel.empty()) return InvalidArgument(vm + ": kernel is required");
  if (spec.qemu_binary.empty()) return InvalidArgument(vm + ": qemu is required");
  if (spec.icount_shift < 0 || spec.icount_shift > 10) {
    return InvalidArgument(
        fmt::format("{}: icount_shift {} is out of range 0..10", vm, spec.icount_shift));
  }
  std::set<std::string> ids;
  for (const auto& disk : spec.disks) {
    if (!ft::IsValidName(disk.id)) {
      return InvalidArgument(
          fmt::format("{}: disk id '{}' is not valid", vm, PrintableText(disk.id, kMaxNameBytes)));
    }
    if (!ids.insert(disk.id).second) {
      return InvalidArgument(fmt::format("{}: disk id '{}' is used twice", vm, disk.id));
    }
    if (disk.format != "qcow2" && disk.format != "raw") {
      return InvalidArgument(fmt::format("{}: disk {} has format '{}'; supported: qcow2, raw", vm,
                                         disk.id, disk.format));
    }
  }
  if (spec.nic) {
    const auto& nic = *spec.nic;
    if (!IsValidMac(nic.mac)) {
      return InvalidArgument(
          fmt::format("{}: mac '{}' is not a unicast MAC like 52:54:00:12:34:56", vm, nic.mac));
    }
    switch (nic.backend) {
      case NicBackend::kUser:
        break;
      case NicBackend::kStream:
        if (nic.socket_path.empty()) return InvalidArgument(vm + ": nic stream needs a socket");
        break;
      case NicBackend::kTap:
        if (nic.tap_name.empty() || nic.tap_name.size() > 15) {
          return InvalidArgument(vm + ": nic tap needs an interface name of 1-15 characters");
        }
        break;
      case NicBackend::kBridge:
        if (nic.bridge.empty() || nic.bridge.size() > 15) {
          return InvalidArgument(vm +
                                 ": nic bridge needs 'bridge', a host bridge name of 1-15 "
                                 "characters");
        }
        break;
    }
    if (nic.backend != NicBackend::kUser && !nic.forwards.empty()) {
      return InvalidArgument(vm + ": host forwards need the 'user' nic backend");
    }
  }
  return Status::Ok();
}

}  // namespace ft::domain
