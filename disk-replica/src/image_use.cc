#include "ft/disk/image_use.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

namespace ft::disk {

Status CheckImageNotInUse(const std::string& vm, const std::string& disk_id,
                          const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) {
      return NotFound(fmt::format("vm '{}': disk.{} '{}' does not exist", vm, disk_id, path));
    }
    return ErrnoStatus(fmt::format("vm '{}': disk.{} '{}'", vm, disk_id, path), err);
  }
  // Would a write lock over the whole file conflict? QEMU locks single bytes (100.. for the
  // permissions it uses, 200.. for those it refuses to share), so any lock means a user.
  struct flock probe {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  probe.l_start = 0;
  probe.l_len = 0;
  int rc = fcntl(fd, F_OFD_GETLK, &probe);
  int err = errno;
  close(fd);
  if (rc != 0) {
    return ErrnoStatus(
        fmt::format("vm '{}': cannot probe the locks of disk.{} '{}'", vm, disk_id, path), err);
  }
  if (probe.l_type != F_UNLCK) {
    std::string holder = probe.l_pid > 0 ? fmt::format("pid {}", probe.l_pid)
                                         : std::string("a QEMU, qemu-img or qemu-nbd");
    return FailedPrecondition(fmt::format(
        "vm '{}': disk.{} '{}' is in use by another process ({} holds a lock on it); two "
        "writers would corrupt it: stop the other user first",
        vm, disk_id, path, holder));
  }
  return Status::Ok();
}

}  // namespace ft::disk
