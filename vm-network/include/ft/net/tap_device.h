// The host side of a VM's NIC: a TAP device on one of the host's bridges. ftd creates it
// (not persistent: it disappears when ftd closes it, also when ftd dies) so that a crashed
// daemon never leaves a live port on the VM's network.
#pragma once

#include <string>

#include "ft/status.h"

namespace ft::net {

// A TAP name for `vm`: "ft-" + the VM name, shortened with a hash to fit IFNAMSIZ.
std::string TapNameFor(const std::string& vm);

struct OpenedTap {
  int fd = -1;  // the caller owns it
  std::string name;
};

// Creates TAP `name` (IFF_TAP | IFF_NO_PI, non-blocking) and attaches it to `bridge`; the
// link stays down until SetLinkUp. Errors name the device and the bridge.
Result<OpenedTap> CreateTap(const std::string& name, const std::string& bridge);

// Sets the link of interface `name` up or down.
Status SetLinkUp(const std::string& name, bool up);

}  // namespace ft::net
