// The launcher: VmSpec + mode -> QEMU argv. Pure (no I/O), so every mode's command line is
// unit-tested. Device choices follow what was verified to record and replay on QEMU 7.2:
// e1000 + filter-replay for the NIC, blkreplay under every disk in record/replay.
#pragma once

#include <string>
#include <vector>

#include "ft/domain/vm_spec.h"

namespace ft::replay {

enum class RunMode {
  kPlain,   // no record/replay; icount optional (for like-for-like benchmarks)
  kRecord,  // primary: -icount shift=N,rr=record,rrfile=LOG
  kReplay,  // backup: -icount shift=N,rr=replay,rrfile=LOG
};

const char* RunModeName(RunMode mode);

struct LaunchPaths {
  std::string qmp_socket;   // QMP unix socket QEMU listens on (server, nowait)
  std::string console_log;  // serial console output file
  std::string rr_file;      // record/replay log (file or FIFO); rr modes only
  // A second QMP monitor for operators and tests (QEMU serves one client per monitor
  // socket, and ftd holds the first). Empty: none.
  std::string operator_qmp_socket;
  // NicBackend::kBridge: the unix socket ftd serves the VM's NIC on.
  std::string nic_socket;
  // rr modes: a qcow2 image that holds VM-state snapshots (savevm at go-live, -loadvm after).
  // It is no guest device, so record and replay see the same machine with or without it.
  // Empty: none.
  std::string vm_state_drive = {};
  // rr modes: a memory file QEMU maps shared as the guest's RAM (GuestRam::path_in_child()),
  // so the RAM outlives the process. Empty: QEMU's own anonymous RAM.
  std::string guest_ram = {};
};

struct LaunchOptions {
  RunMode mode = RunMode::kPlain;
  bool plain_with_icount = false;  // kPlain only: same -icount shift as rr, without rr
  bool start_paused = false;       // -S: the vCPU waits for QMP `cont` (a replayer needs its
                                   // first replay-break set before it runs)
  std::string loadvm = {};         // -loadvm: start from this snapshot in vm_state_drive
  // `loadvm` was saved with x-ignore-shared: the snapshot holds no RAM, which is already in
  // paths.guest_ram (go-live). Needs guest_ram and ftd's QEMU (replay/qemu-patches/).
  bool loadvm_without_ram = false;
  // rr modes: -icount rrsnapshot=NAME. A recorder saves its starting point under NAME
  // before it runs (after -loadvm); a replayer loads NAME before it replays. How a backup
  // starts from a running primary (re-protection, docs/design.md).
  std::string rrsnapshot = {};
};

std::vector<std::string> BuildQemuCommand(const domain::VmSpec& spec, const LaunchOptions& options,
                                          const LaunchPaths& paths);

// Shell-quoted single line, for logs and error messages.
std::string JoinCommandLine(const std::vector<std::string>& argv);

}  // namespace ft::replay
