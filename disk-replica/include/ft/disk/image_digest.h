// What proves two disk replicas start equal: the sha256 of each image file's bytes. Replay
// from the start needs the backup's replica to be exactly the primary's image as it was
// when the primary started recording.
#pragma once

#include <cstdint>
#include <string>

#include "ft/domain/vm_spec.h"
#include "ft/status.h"

namespace ft::disk {

struct ImageDigest {
  uint64_t size = 0;
  std::string sha256;  // hex
};

// Reads the whole file. Errors name the VM, the disk and the path.
Result<ImageDigest> DigestImage(const std::string& vm, const std::string& disk_id,
                                const std::string& path);

// One digest over every disk of `spec` ("" for a VM without disks): "id size sha256" per
// disk, in order. The two hosts' must be equal for the channel's handshake to succeed.
Result<std::string> ReplicaSetDigest(const domain::VmSpec& spec);

}  // namespace ft::disk
