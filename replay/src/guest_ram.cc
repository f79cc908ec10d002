#include "ft/replay/guest_ram.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

namespace ft::replay {

Result<std::shared_ptr<GuestRam>> GuestRam::Create(const std::string& vm, uint64_t bytes) {
  if (bytes == 0) return InvalidArgument(fmt::format("vm '{}': guest RAM of 0 bytes", vm));
  // memfd names are at most 249 bytes; a VM name is at most 64 (ft::IsValidName).
  std::string name = "ftd-ram:" + vm.substr(0, 200);
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) {
    return ErrnoStatus(
        fmt::format("vm '{}': cannot create the guest's RAM file (memfd_create)", vm), errno);
  }
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    int err = errno;
    close(fd);
    return ErrnoStatus(
        fmt::format("vm '{}': cannot size the guest's RAM file to {} MiB", vm, bytes >> 20), err);
  }
  return std::shared_ptr<GuestRam>(new GuestRam(fd, bytes));
}

GuestRam::~GuestRam() { close(fd_); }

std::string GuestRam::path_in_child() const { return fmt::format("/proc/self/fd/{}", fd_); }

}  // namespace ft::replay
