// Internal to ftd: VMs whose FT was turned on at run time (`ftctl enable` on the primary's
// host, the peer's protect request on the backup's), kept in
// <state_dir>/vms/NAME/enabled.conf so a restarted ftd runs them again in the same role.
// The file is the VM's [vm NAME] section (FormatVmSection) under a "# role: ..." line.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ft/daemon/config.h"
#include "ft/status.h"

namespace ft::daemon {

struct EnabledVm {
  domain::VmSpec spec;
  FtRole role = FtRole::kOff;
  std::string source;  // where the definition came from ("libvirt domain 'web1' ...")
};

// Written to a temporary file and renamed: a crash leaves the old record or the new one.
Status SaveEnabledVm(const NodeConfig& node, const EnabledVm& vm);
// Removes the record (not the VM's other state: its epoch stays, epochs only grow).
Status ForgetEnabledVm(const NodeConfig& node, const std::string& vm);
// A copy that went live on this host is the VM's primary now: its record says so, so a
// restarted ftd runs it (no record: nothing to do).
Status PromoteEnabledVm(const NodeConfig& node, const std::string& vm);

struct EnabledVmsOnDisk {
  std::vector<EnabledVm> vms;   // sorted by name
  std::vector<Status> damaged;  // records that do not parse, each naming its file
};
// Every record under the state dir. A damaged record is reported, never silently dropped,
// and does not keep the others from running.
EnabledVmsOnDisk LoadEnabledVms(const NodeConfig& node);

// The bytes of a record, and back (pure; the fuzz target and the tests use them). Decode
// takes the file's path for its messages; a damaged record is DataLoss naming it, a newer
// format version FailedPrecondition. A record of an older ftd (no version or CRC line) reads.
std::string EncodeEnabledVmRecord(const EnabledVm& vm);
Result<EnabledVm> DecodeEnabledVmRecord(const std::string& path, std::string_view text);

}  // namespace ft::daemon
