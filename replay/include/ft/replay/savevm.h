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

}  // namespace ft::replay
