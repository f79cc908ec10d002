// The states a VM reports, typed from the part of ftd that decides them to ftctl's output.
// Each enum here is proto/ft/proto/control.proto's of the same name, value for value (checked
// when ftd compiles, in vm_status_enums.cc), so a report crosses to the wire by a cast; their
// text ("waiting-for-backup") is the proto value's name, lower case, without its prefix. This
// header stays light: protobuf's headers are included by .cc files only.
#pragma once

namespace ft::arbiter {
enum class FtState;
}
namespace ft::proto {  // control.proto's enums (protobuf declares them `: int`)
enum FtRole : int;
enum RunState : int;
enum VmFtState : int;
enum SwitchoverKind : int;
}  // namespace ft::proto

namespace ft::daemon {

// A VM's part in fault tolerance on this node.
enum class FtRole { kOff = 1, kPrimary = 2, kBackup = 3 };

// A VM's QEMU on this node (kWaiting: a backup whose replayer has not started).
enum class VmState { kStarting = 1, kRunning, kStopping, kStopped, kFailed, kWaiting };

// Where a VM's fault tolerance stands (docs/design.md, "FT states").
enum class VmFtState {
  kOff = 1,
  kCheckingStore,
  kStale,
  kWaitingForPeer,
  kWaitingForBackup,
  kWaitingForPrimary,
  kProtected,
  kReplaying,
  kArbitrating,
  kPrimaryLost,
  kGoingLive,
  kLive,
  kUnprotected,
  kHalted,
  kFinished,
  kFailed,
};

// How a protected VM moves to the other node on the operator's word.
enum class SwitchoverKind { kFailover = 1, kDrill };

const char* FtRoleName(FtRole role);                  // "primary"
const char* VmStateName(VmState state);               // "running"
const char* VmFtStateName(VmFtState state);           // "waiting-for-backup"
const char* SwitchoverKindName(SwitchoverKind kind);  // "drill"

// The same text for a value as it arrives on the wire (ftctl, a peer's answer). A value this
// build does not know (a newer peer's) is "?".
const char* FtRoleName(proto::FtRole role);
const char* VmStateName(proto::RunState state);
const char* VmFtStateName(proto::VmFtState state);
const char* SwitchoverKindName(proto::SwitchoverKind kind);

// The authority's state (arbiter/) as a VM reports it; a primary says waiting-for-backup and
// a backup waiting-for-primary where the authority says waiting-for-peer.
VmFtState ReportedFtState(arbiter::FtState state);
VmFtState ReportedFtState(arbiter::FtState state, FtRole role);

}  // namespace ft::daemon
