// Internal to ftd: VMs whose FT was turned on at run time (`ftctl enable` on the primary's
// host, the peer's protect request on the backup's), kept in
// <state_dir>/vms/NAME/enabled.conf so a restarted ftd runs them again in the same role.
// The file is the VM's [vm NAME] section (FormatVmSection) under a "# role: ..." line.
#pragma once

#include <string>
#include <vector>

#include "ft/daemon/config.h"
#include "ft/status.h"

namespace ft::daemon {

struct EnabledVm {
  replay::VmSpec spec;
  FtRole role = FtRole::kOff;
  std::string source;  // where the definition came from ("libvirt domain 'web1' ...")
};

// Written to a temporary file and renamed: a crash leaves the old record or the new one.
Status SaveEnabledVm(const NodeConfig& node, const EnabledVm& vm);
// Removes the record (not the VM's other state: its epoch stays, epochs only grow).
Status ForgetEnabledVm(const NodeConfig& node, const std::string& vm);
// Every record under the state dir, sorted by name. A record that does not parse is an
// error naming its file: a VM must never silently lose its protection.
Result<std::vector<EnabledVm>> LoadEnabledVms(const NodeConfig& node);

}  // namespace ft::daemon
