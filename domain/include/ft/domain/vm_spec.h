// What a protected VM is, independent of how it runs: memory, boot, disks, NIC. The launcher
// turns a VmSpec plus a RunMode into a QEMU command line; record and replay must see the same
// spec byte for byte (design rule 1), so a spec has a canonical text form to digest.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ft/status.h"

namespace ft::domain {

enum class DiskBus { kVirtio, kIde };
enum class NicBackend {
  kUser,    // QEMU user networking with host forwards (foundation tests; no root needed)
  kStream,  // unix stream socket served by ftd (output commit goes through it)
  kTap,     // a host TAP device
  kBridge,  // ftd serves the NIC (stream socket, output gate) on a TAP it adds to a bridge
};

struct DiskSpec {
  std::string id;    // guest-facing drive id, e.g. "vda"
  std::string path;  // image file
  std::string format = "qcow2";
  DiskBus bus = DiskBus::kVirtio;
};

struct HostForward {
  std::string host_address;  // numeric IPv4, e.g. 127.0.0.1
  uint16_t host_port = 0;
  uint16_t guest_port = 0;
};

struct NicSpec {
  std::string mac = "52:54:00:12:34:56";
  NicBackend backend = NicBackend::kUser;
  std::vector<HostForward> forwards;  // kUser only
  std::string socket_path;            // kStream only
  std::string tap_name;               // kTap only
  std::string bridge;                 // kBridge only: the host bridge ftd attaches its TAP to
};

struct VmSpec {
  std::string name;
  std::string qemu_binary = "qemu-system-x86_64";
  uint32_t memory_mib = 256;
  std::string kernel;
  std::string initrd;
  std::string cmdline;
  std::vector<DiskSpec> disks;
  std::optional<NicSpec> nic;
  int icount_shift = 5;  // fixed shift: shift=auto made guest sleeps 10x slower (design.md)
};

// Checks what can be checked without touching the filesystem: name syntax, ranges, MAC
// syntax, duplicate disk ids, per-backend fields. Messages name the field.
Status ValidateVmSpec(const VmSpec& spec);

bool IsValidMac(const std::string& mac);

// The digest both hosts of a VM pair compare in the logging channel's handshake: SHA-256
// (hex) over what must be identical for replay to stay in lockstep -- memory, icount shift,
// command line, the kernel's and initrd's contents, disk ids/formats/buses, the NIC's
// presence and MAC. Host-local things (image paths, NIC backend, forwards) are left out.
// Reads the kernel and initrd, each version of a file (path, inode, size, mtime, ctime) once
// per process: they are tens of MiB and shared by the VMs of a host. Errors name the file.
Result<std::string> ReplicatedSpecDigest(const VmSpec& spec);

const char* DiskBusName(DiskBus bus);
const char* NicBackendName(NicBackend backend);

}  // namespace ft::domain
