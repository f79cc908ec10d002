// Is a directory a mount point? `ftctl init-storage --expect-mount` asks before it makes a
// claim store, so that the empty mount point of a share that failed to mount is never made
// one (each host would then decide failovers on its own local disk).
#pragma once

#include <string>
#include <string_view>

#include "ft/status.h"

namespace ft::shared_disk {

// Whether the text of a /proc/<pid>/mountinfo lists `path` (absolute, symlinks resolved) as a
// mount point (its fifth field, with the kernel's octal escapes such as "\040" undone). Pure.
bool MountInfoListsMountPoint(std::string_view mountinfo, std::string_view path);

// Whether `path` is a mount point: "/", a directory on another device than its parent, or one
// /proc/self/mountinfo lists (which also finds bind mounts within one filesystem). Symlinks
// in `path` are resolved first. Unavailable naming the path if it cannot be resolved.
Result<bool> IsMountPoint(const std::string& path);

}  // namespace ft::shared_disk
