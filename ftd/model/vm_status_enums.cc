#include "ft/daemon/vm_status_enums.h"

#include <map>
#include <string>
#include <string_view>

#include <google/protobuf/descriptor.h>

#include "ft/arbiter/vm_arbiter.h"
#include "ft/proto/control.pb.h"

namespace ft::daemon {
namespace {

// Value for value, so a cast carries a report to the wire and back.
template <typename Ours, typename Wire>
constexpr bool Same(Ours ours, Wire wire) {
  return static_cast<int>(ours) == static_cast<int>(wire);
}
static_assert(Same(FtRole::kOff, proto::FT_ROLE_OFF) &&
              Same(FtRole::kPrimary, proto::FT_ROLE_PRIMARY) &&
              Same(FtRole::kBackup, proto::FT_ROLE_BACKUP) && proto::FtRole_MAX == 3);
static_assert(Same(VmState::kStarting, proto::RUN_STATE_STARTING) &&
              Same(VmState::kRunning, proto::RUN_STATE_RUNNING) &&
              Same(VmState::kStopping, proto::RUN_STATE_STOPPING) &&
              Same(VmState::kStopped, proto::RUN_STATE_STOPPED) &&
              Same(VmState::kFailed, proto::RUN_STATE_FAILED) &&
              Same(VmState::kWaiting, proto::RUN_STATE_WAITING) && proto::RunState_MAX == 6);
static_assert(Same(VmFtState::kOff, proto::VM_FT_STATE_OFF) &&
              Same(VmFtState::kCheckingStore, proto::VM_FT_STATE_CHECKING_STORE) &&
              Same(VmFtState::kStale, proto::VM_FT_STATE_STALE) &&
              Same(VmFtState::kWaitingForPeer, proto::VM_FT_STATE_WAITING_FOR_PEER) &&
              Same(VmFtState::kWaitingForBackup, proto::VM_FT_STATE_WAITING_FOR_BACKUP) &&
              Same(VmFtState::kWaitingForPrimary, proto::VM_FT_STATE_WAITING_FOR_PRIMARY) &&
              Same(VmFtState::kProtected, proto::VM_FT_STATE_PROTECTED) &&
              Same(VmFtState::kReplaying, proto::VM_FT_STATE_REPLAYING) &&
              Same(VmFtState::kArbitrating, proto::VM_FT_STATE_ARBITRATING) &&
              Same(VmFtState::kPrimaryLost, proto::VM_FT_STATE_PRIMARY_LOST) &&
              Same(VmFtState::kGoingLive, proto::VM_FT_STATE_GOING_LIVE) &&
              Same(VmFtState::kLive, proto::VM_FT_STATE_LIVE) &&
              Same(VmFtState::kUnprotected, proto::VM_FT_STATE_UNPROTECTED) &&
              Same(VmFtState::kHalted, proto::VM_FT_STATE_HALTED) &&
              Same(VmFtState::kFinished, proto::VM_FT_STATE_FINISHED) &&
              Same(VmFtState::kFailed, proto::VM_FT_STATE_FAILED) && proto::VmFtState_MAX == 16);
static_assert(Same(SwitchoverKind::kFailover, proto::SWITCHOVER_KIND_FAILOVER) &&
              Same(SwitchoverKind::kDrill, proto::SWITCHOVER_KIND_DRILL) &&
              proto::SwitchoverKind_MAX == 2);

// An enum's values as text, from its descriptor: VM_FT_STATE_WAITING_FOR_BACKUP in enum
// VmFtState is "waiting-for-backup" (the prefix is the enum's name in upper snake case).
class EnumTexts {
 public:
  explicit EnumTexts(const google::protobuf::EnumDescriptor& e) {
    std::string prefix;
    for (char c : e.name()) {
      if (c >= 'A' && c <= 'Z' && !prefix.empty()) prefix += '_';
      prefix += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    }
    prefix += '_';
    for (int i = 0; i < e.value_count(); ++i) {
      std::string_view name = e.value(i)->name();
      if (name.substr(0, prefix.size()) == prefix) name.remove_prefix(prefix.size());
      std::string text;
      for (char c : name)
        text += c == '_' ? '-' : static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
      texts_[e.value(i)->number()] = text;
    }
  }
  const char* operator()(int number) const {
    auto it = texts_.find(number);
    return it == texts_.end() ? "?" : it->second.c_str();
  }

 private:
  std::map<int, std::string> texts_;
};

}  // namespace

const char* FtRoleName(FtRole role) {
  static const EnumTexts texts(*proto::FtRole_descriptor());
  return texts(static_cast<int>(role));
}

const char* VmStateName(VmState state) {
  static const EnumTexts texts(*proto::RunState_descriptor());
  return texts(static_cast<int>(state));
}

const char* VmFtStateName(VmFtState state) {
  static const EnumTexts texts(*proto::VmFtState_descriptor());
  return texts(static_cast<int>(state));
}

const char* SwitchoverKindName(SwitchoverKind kind) {
  static const EnumTexts texts(*proto::SwitchoverKind_descriptor());
  return texts(static_cast<int>(kind));
}

const char* FtRoleName(proto::FtRole role) { return FtRoleName(static_cast<FtRole>(role)); }
const char* VmStateName(proto::RunState state) { return VmStateName(static_cast<VmState>(state)); }
const char* VmFtStateName(proto::VmFtState state) {
  return VmFtStateName(static_cast<VmFtState>(state));
}
const char* SwitchoverKindName(proto::SwitchoverKind kind) {
  return SwitchoverKindName(static_cast<SwitchoverKind>(kind));
}

VmFtState ReportedFtState(arbiter::FtState state) {
  switch (state) {
    case arbiter::FtState::kCheckingStore:
      return VmFtState::kCheckingStore;
    case arbiter::FtState::kStale:
      return VmFtState::kStale;
    case arbiter::FtState::kWaitingForPeer:
      return VmFtState::kWaitingForPeer;
    case arbiter::FtState::kProtected:
      return VmFtState::kProtected;
    case arbiter::FtState::kArbitrating:
      return VmFtState::kArbitrating;
    case arbiter::FtState::kGoingLive:
      return VmFtState::kGoingLive;
    case arbiter::FtState::kUnprotected:
      return VmFtState::kUnprotected;
    case arbiter::FtState::kHalted:
      return VmFtState::kHalted;
  }
  return VmFtState::kHalted;
}

VmFtState ReportedFtState(arbiter::FtState state, FtRole role) {
  if (state != arbiter::FtState::kWaitingForPeer) return ReportedFtState(state);
  return role == FtRole::kBackup ? VmFtState::kWaitingForPrimary : VmFtState::kWaitingForBackup;
}

}  // namespace ft::daemon
