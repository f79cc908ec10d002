// The VM-state drive: a small qcow2 image next to a protected VM's runtime files that holds
// the snapshot a backup takes when it goes live (savevm) and the new recorder starts from
// (-loadvm). The guest never sees it (docs/design.md, "Go-live from any event boundary").
#pragma once

#include <string>

#include "ft/status.h"

namespace ft::replay {

// The snapshot name a going-live backup saves and its recorder loads.
inline constexpr const char* kGoLiveSnapshot = "ft-golive";

// Creates (or replaces) an empty qcow2 at `path` with `qemu-img create`. The image's virtual
// size is tiny; the VM state lives beyond it. Errors name the path and quote qemu-img.
Status CreateVmStateDrive(const std::string& path);

// A go-live saves the VM state into the first writable qcow2, which may be a data disk, and
// the new recorder deletes it once it runs (delvm). A crash in between leaves it there: this
// deletes it from `image` if present (qemu-img snapshot), so snapshots never pile up in a
// disk replica. `scratch` is a path prefix for qemu-img's output.
Status DeleteStaleGoLiveSnapshot(const std::string& image, const std::string& scratch);

}  // namespace ft::replay
