// The VM-state drive: a small qcow2 image next to a protected VM's runtime files that holds
// the snapshot a backup takes when it goes live (savevm) and the new recorder starts from
// (-loadvm). The guest never sees it (docs/design.md, "Go-live from any event boundary").
#pragma once

#include <string>

#include "ft/status.h"

namespace ft::replay {

// The snapshot name a going-live backup saves and its recorder loads.
inline constexpr const char* kGoLiveSnapshot = "ft-golive";
// Re-protection (docs/design.md): the running primary is saved under kReprotectSnapshot,
// and the recorder that continues it saves its starting point under kBaseSnapshot, from
// which the new backup's replayer starts.
inline constexpr const char* kReprotectSnapshot = "ft-reprotect";
inline constexpr const char* kBaseSnapshot = "ft-base";

// Creates (or replaces) an empty qcow2 at `path` with `qemu-img create`. The image's virtual
// size is tiny; the VM state lives beyond it. Errors name the path and quote qemu-img.
Status CreateVmStateDrive(const std::string& path);

// savevm also takes a (disk-only) snapshot of every disk, and a running recorder cannot
// delete it (delvm drains the disks, which hung a recorder with a guest request in flight).
// Before QEMU starts, this deletes ftd's snapshots (go-live, re-protection) from `image`
// if present (qemu-img snapshot), so they never pile up in a disk. `scratch` is a path
// prefix for qemu-img's output.
Status DeleteStaleFtSnapshots(const std::string& image, const std::string& scratch);

// `qemu-img snapshot -c NAME IMAGE`: a disk-only snapshot of a disk no QEMU has open.
Status CreateDiskSnapshot(const std::string& image, const std::string& name,
                          const std::string& scratch);

// The guest-visible contents of `image` at its internal snapshot `name`, as a new qcow2
// `out` (qemu-img convert -U: the image may be open in a running QEMU; a snapshot's
// clusters are never written again). On error nothing is left at `out`.
Status ExportDiskSnapshot(const std::string& image, const std::string& name,
                          const std::string& out);

}  // namespace ft::replay
