// Is another process using a disk image? QEMU takes OFD byte-range locks on the images it
// opens; a probe for a conflicting write lock finds them (another ftd's QEMU, a libvirt
// domain that runs, qemu-img, qemu-nbd).
#pragma once

#include <string>

#include "ft/status.h"

namespace ft::disk {

// kFailedPrecondition "vm 'web1': disk.vda '/x.qcow2' is in use by another process (...)"
// when a lock is held; kNotFound when the file is missing.
Status CheckImageNotInUse(const std::string& vm, const std::string& disk_id,
                          const std::string& path);

}  // namespace ft::disk
