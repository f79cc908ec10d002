// savevm into the VM-state drive, with the guest's RAM or without it. Every snapshot ftd
// takes goes through SaveVm, which sets QEMU's x-ignore-shared capability for this save
// first: whatever a command line or an earlier save left set, a snapshot that leaves this
// host (re-protection) always carries the RAM.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "ft/status.h"

namespace ft::replay {

class QmpClient;

enum class SnapshotRam {
  kIncluded,        // the RAM is in the snapshot: any QEMU can load it
  kInGuestRamFile,  // only the device state: the RAM stays in the VM's GuestRam, whose next
                    // QEMU loads it with LaunchOptions::loadvm_without_ram (go-live)
};

// `migrate-set-capabilities` x-ignore-shared, then HMP `savevm NAME`; `done` gets the first
// failure (naming the command) or ok. The VM should be stopped.
void SaveVm(const std::shared_ptr<QmpClient>& qmp, const std::string& name, SnapshotRam ram,
            std::chrono::milliseconds timeout, std::function<void(Status)> done);

// Whether this QEMU can start from a kInGuestRamFile snapshot: ftd's build
// (replay/qemu-patches/loadvm-without-ram-from-a-shared-memory-file.patch) has
// `x-ignore-shared` among the migration object's properties, which -loadvm needs and a
// QEMU without the patch lacks. `done` gets false on any failure: the RAM then goes
// through the snapshot, slower but loadable by any QEMU.
void ProbeLoadvmWithoutRam(const std::shared_ptr<QmpClient>& qmp, std::function<void(bool)> done);

}  // namespace ft::replay
