// The guest's RAM as a memory file that ftd holds (a memfd) and each QEMU running the VM
// maps shared (memory-backend-file, share=on). It outlives a QEMU process: at go-live the
// replayer saves only its device state (x-ignore-shared) and quits, and the recording QEMU
// that takes over maps the same file with the guest's RAM already in it, instead of 256 MiB
// or more going through savevm and -loadvm (docs/design.md, "Failover").
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ft/status.h"

namespace ft::replay {

class GuestRam {
 public:
  // A zero-filled memory file of `bytes`, named "ftd-ram:<vm>" in /proc/PID/maps. Close on
  // exec: only the QEMU it is given to (SpawnOptions::inherit_fds) inherits it.
  static Result<std::shared_ptr<GuestRam>> Create(const std::string& vm, uint64_t bytes);
  ~GuestRam();
  GuestRam(const GuestRam&) = delete;
  GuestRam& operator=(const GuestRam&) = delete;

  int fd() const { return fd_; }
  uint64_t bytes() const { return bytes_; }
  // What QEMU opens as mem-path: the inherited descriptor, same number in the child.
  std::string path_in_child() const;

 private:
  GuestRam(int fd, uint64_t bytes) : fd_(fd), bytes_(bytes) {}
  int fd_;
  uint64_t bytes_;
};

}  // namespace ft::replay
