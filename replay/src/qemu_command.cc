#include "ft/replay/qemu_command.h"

#include <fmt/format.h>

namespace ft::replay {
namespace {

// QEMU option values are comma separated; a literal comma is written twice.
std::string QemuEscape(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    out += c;
    if (c == ',') out += ',';
  }
  return out;
}

bool IsRecordReplay(RunMode mode) { return mode != RunMode::kPlain; }

// Options for a qcow2 image under record/replay: no cache-clean timer. The timer (every 600 s
// by default) sits on QEMU_CLOCK_VIRTUAL in the main AioContext, so under -icount every
// clock notification from the vCPU (several each guest tick) woke the main loop: 11,014
// times a second in a recorder whose guest computes, 2 without the timer
// (RrLogDensityTest). With QEMU's default RTC each of those passes also wrote a
// CHECKPOINT_CLOCK_HOST and two host clock reads for the replayer's main loop (the -rtc
// choice below): 34,388 and 68,896 in a 10 s recording, and a one-core pair ran the
// CPU-bound workload 1.6x faster without the timer (docs/benchmarks.md). The caches the
// timer would trim are bounded by l2-cache-size and refcount-cache-size anyway.
std::string Qcow2Options(const std::string& format, RunMode mode) {
  return IsRecordReplay(mode) && format == "qcow2" ? ",cache-clean-interval=0" : "";
}

void AddDisks(const domain::VmSpec& spec, RunMode mode, std::vector<std::string>& argv) {
  int ide_index = 0;
  for (const auto& disk : spec.disks) {
    std::string guest_drive = disk.id;
    if (IsRecordReplay(mode)) {
      // blkreplay makes I/O completion deterministic; the image itself stays per host.
      std::string direct = disk.id + "-direct";
      argv.push_back("-drive");
      argv.push_back(fmt::format("file={},if=none,id={},format={}{}", QemuEscape(disk.path), direct,
                                 disk.format, Qcow2Options(disk.format, mode)));
      argv.push_back("-drive");
      argv.push_back(fmt::format("driver=blkreplay,if=none,image={},id={}", direct, disk.id));
    } else {
      argv.push_back("-drive");
      argv.push_back(fmt::format("file={},if=none,id={},format={}", QemuEscape(disk.path), disk.id,
                                 disk.format));
    }
    argv.push_back("-device");
    if (disk.bus == domain::DiskBus::kVirtio) {
      // Under TCG a virtio notify with ioeventfd on only signals an eventfd, and the main
      // loop submits the request whenever it next runs: at a host-timed point of the guest's
      // instruction stream, different in the recorder and the replayer, so a request the
      // guest queued just before a clean stop can reach one replica and not the other
      // (DiskTest.ReplicasAreIdenticalAfterACleanRun). ioeventfd=off handles the notify in
      // the vCPU, at the instruction that writes it, on both hosts.
      argv.push_back(IsRecordReplay(mode)
                         ? fmt::format("virtio-blk-pci,drive={},ioeventfd=off", guest_drive)
                         : fmt::format("virtio-blk-pci,drive={}", guest_drive));
    } else {
      argv.push_back(fmt::format("ide-hd,drive={},bus=ide.{},unit={}", guest_drive, ide_index / 2,
                                 ide_index % 2));
      ++ide_index;
    }
  }
}

void AddNic(const domain::NicSpec& nic, RunMode mode, const LaunchPaths& paths,
            std::vector<std::string>& argv) {
  const char* kNetdev = "net0";
  std::string netdev;
  switch (nic.backend) {
    case domain::NicBackend::kUser:
      netdev = fmt::format("user,id={}", kNetdev);
      if (mode == RunMode::kReplay) {
        // A replayer's inbound frames come from the log; it must not bind the primary's
        // forwarded ports nor reach out on its own.
        netdev += ",restrict=on";
      } else {
        for (const auto& fwd : nic.forwards) {
          netdev += fmt::format(",hostfwd=tcp:{}:{}-:{}", fwd.host_address, fwd.host_port,
                                fwd.guest_port);
        }
      }
      break;
    case domain::NicBackend::kStream:
      netdev = fmt::format("stream,id={},server=off,addr.type=unix,addr.path={}", kNetdev,
                           QemuEscape(nic.socket_path));
      break;
    case domain::NicBackend::kTap:
      netdev = fmt::format("tap,id={},ifname={},script=no,downscript=no", kNetdev, nic.tap_name);
      break;
    case domain::NicBackend::kBridge:
      // ftd listens before QEMU starts (7.2 does not reconnect) and forwards to its TAP.
      netdev = fmt::format("stream,id={},server=off,addr.type=unix,addr.path={}", kNetdev,
                           QemuEscape(paths.nic_socket));
      break;
  }
  argv.push_back("-netdev");
  argv.push_back(netdev);
  // e1000: virtio-net with filter-replay hangs in replay on QEMU 7.2 (design.md).
  argv.push_back("-device");
  argv.push_back(fmt::format("e1000,netdev={},mac={}", kNetdev, nic.mac));
  if (IsRecordReplay(mode)) {
    argv.push_back("-object");
    argv.push_back(fmt::format("filter-replay,id={}-replay,netdev={}", kNetdev, kNetdev));
  }
}

}  // namespace

const char* RunModeName(RunMode mode) {
  switch (mode) {
    case RunMode::kPlain:
      return "plain";
    case RunMode::kRecord:
      return "record";
    case RunMode::kReplay:
      return "replay";
  }
  return "?";
}

std::vector<std::string> BuildQemuCommand(const domain::VmSpec& spec, const LaunchOptions& options,
                                          const LaunchPaths& paths) {
  // The guest's RAM in ftd's memory file, under the RAM block name a QEMU without it uses
  // ("pc.ram"), so snapshots of either kind load in the other.
  bool ram_file = IsRecordReplay(options.mode) && !paths.guest_ram.empty();
  std::vector<std::string> argv = {
      spec.qemu_binary,
      "-name",
      fmt::format("guest={},debug-threads=on", spec.name),
      "-machine",
      ram_file ? "pc,memory-backend=pc.ram" : "pc",
      "-accel",
      "tcg",
      "-smp",
      "1",
      "-m",
      std::to_string(spec.memory_mib),
      "-nodefaults",
      "-no-user-config",
      "-display",
      "none",
      // A guest reboot ends the process: a rebooted guest would silently leave lockstep.
      "-no-reboot",
  };
  if (ram_file) {
    argv.push_back("-object");
    argv.push_back(
        fmt::format("memory-backend-file,id=pc.ram,size={}M,mem-path={},share=on,"
                    "x-use-canonical-path-for-ramblock-id=off",
                    spec.memory_mib, QemuEscape(paths.guest_ram)));
    if (options.loadvm_without_ram && !options.loadvm.empty()) {
      argv.push_back("-global");
      argv.push_back("migration.x-ignore-shared=on");
    }
  }
  if (options.start_paused) argv.push_back("-S");
  switch (options.mode) {
    case RunMode::kPlain:
      if (options.plain_with_icount) {
        argv.push_back("-icount");
        argv.push_back(fmt::format("shift={}", spec.icount_shift));
      }
      break;
    case RunMode::kRecord:
    case RunMode::kReplay:
      argv.push_back("-icount");
      argv.push_back(fmt::format(
          "shift={},rr={},rrfile={}{}", spec.icount_shift, RunModeName(options.mode),
          QemuEscape(paths.rr_file),
          options.rrsnapshot.empty() ? "" : ",rrsnapshot=" + QemuEscape(options.rrsnapshot)));
      // The RTC on the virtual clock, not the host's. With an RTC timer on the host clock,
      // every pass of the recorder's main loop (a QMP command, a frame, a disk completion)
      // writes a CHECKPOINT_CLOCK_HOST and two host clock reads, which only the replayer's
      // main loop can take while its vCPU waits. A recorder answering QMP every 5 ms wrote
      // 10,020 of them in a 16 s run, and a one-core replayer took 18.3 s for its 10 s
      // workload, 16.5 s with this (docs/benchmarks.md). The guest reads the
      // RTC at boot, when it starts from the host's date either way; afterwards its clock
      // runs on the (virtual) TSC. Record, replay and every snapshot between them agree.
      argv.push_back("-rtc");
      argv.push_back("clock=vm");
      break;
  }
  argv.push_back("-kernel");
  argv.push_back(spec.kernel);
  if (!spec.initrd.empty()) {
    argv.push_back("-initrd");
    argv.push_back(spec.initrd);
  }
  if (!spec.cmdline.empty()) {
    argv.push_back("-append");
    argv.push_back(spec.cmdline);
  }
  argv.push_back("-chardev");
  // A QEMU started from a snapshot continues the same guest: its console goes on after
  // what the replayer wrote instead of replacing it.
  argv.push_back(fmt::format("file,id=console0,path={}{}", QemuEscape(paths.console_log),
                             options.loadvm.empty() ? "" : ",append=on"));
  argv.push_back("-serial");
  argv.push_back("chardev:console0");
  argv.push_back("-chardev");
  argv.push_back(
      fmt::format("socket,id=qmp0,path={},server=on,wait=off", QemuEscape(paths.qmp_socket)));
  argv.push_back("-mon");
  argv.push_back("chardev=qmp0,mode=control");
  if (!paths.operator_qmp_socket.empty()) {
    argv.push_back("-chardev");
    argv.push_back(fmt::format("socket,id=qmp1,path={},server=on,wait=off",
                               QemuEscape(paths.operator_qmp_socket)));
    argv.push_back("-mon");
    argv.push_back("chardev=qmp1,mode=control");
  }
  // The VM-state drive comes first: savevm writes the VM state into the first writable
  // qcow2, and a snapshot shipped to a new backup must not be inside a disk the running
  // VM keeps writing (docs/design.md, "Re-protection").
  if (IsRecordReplay(options.mode) && !paths.vm_state_drive.empty()) {
    argv.push_back("-drive");
    argv.push_back(fmt::format("if=none,id=ft-vmstate,file={},format=qcow2{}",
                               QemuEscape(paths.vm_state_drive),
                               Qcow2Options("qcow2", options.mode)));
  }
  AddDisks(spec, options.mode, argv);
  if (!options.loadvm.empty()) {
    argv.push_back("-loadvm");
    argv.push_back(options.loadvm);
  }
  if (spec.nic) AddNic(*spec.nic, options.mode, paths, argv);
  return argv;
}

std::string JoinCommandLine(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& arg : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !arg.empty() && arg.find_first_not_of(
                                     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789_-.,:/=+@%") == std::string::npos;
    if (plain) {
      out += arg;
    } else {
      out += '\'';
      for (char c : arg) {
        if (c == '\'')
          out += "'\\''";
        else
          out += c;
      }
      out += '\'';
    }
  }
  return out;
}

}  // namespace ft::replay
