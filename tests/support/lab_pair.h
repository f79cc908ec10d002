// A protected pair in the network lab with a client talking to the guest: what the output
// commit and failover tests (and benchmarks) share.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "guest_client.h"
#include "json_fields.h"
#include "lab.h"
#include "lockstep_pair.h"

namespace ft::testing {

// The guest with nondeterministic console output, its NIC served by ftd in the lab.
LockstepOptions LabPairOptions(Lab& lab);

// Starts the pair and waits until the primary is protected.
Result<std::unique_ptr<LockstepPair>> StartProtected(const LockstepOptions& options);

// Connects a client in the lab's client namespace to the guest's stream service.
Status ConnectClient(Lab& lab, StreamClient& client);

// `count` pings from the lab's client namespace to the guest, 20 ms apart: the RTTs in ms.
// Unavailable when fewer than 9 in 10 were answered.
Result<std::vector<double>> PingRtts(Lab& lab, int count);

// Reads `lines` stream lines with an echo every 10 lines, then waits for every echo.
Status Converse(StreamClient& client, int lines,
                std::chrono::milliseconds timeout = std::chrono::seconds(30));

// A claim store in a temp dir (the shared storage both lab hosts see), made with
// `ftctl init-storage`; removed on destruction.
class ClaimStore {
 public:
  static Result<std::unique_ptr<ClaimStore>> Create();
  ~ClaimStore();
  const std::string& dir() const { return dir_; }
  // Unreachable storage: the directory goes away (as an unmounted share does) and back.
  Status TakeAway();
  Status GiveBack();

 private:
  explicit ClaimStore(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

// Configs for ftds on lab hosts A and B with no VM in them (VMs arrive with `ftctl enable`),
// both alike as operators set them up: roles are per VM, not per host. Each listens on its
// own channel address and has the other as its peer; both use `shared_storage` ("" failover
// off) and the test channel key; `reprotect` as in LockstepOptions.
Status WriteNodeOnlyConfigs(Lab& lab, FtdInstance& a, FtdInstance& b,
                            const std::string& shared_storage,
                            const std::string& reprotect = "manual");

// A protected pair with failover on (a fresh claim store) and a client that has talked to
// the guest's stream service through it. Members are destroyed in reverse order: the client,
// then the ftds, then the store.
struct FailoverPair {
  std::unique_ptr<ClaimStore> store;
  std::unique_ptr<LockstepPair> pair;
  StreamClient client;

  // `options` null: LabPairOptions(lab). Its shared_storage is set to the new store.
  Status Start(Lab& lab, int lines = 30, const LockstepOptions* options = nullptr);
};

// Kills a lab host ("a" or "b") the way a power cut does: its links go first (no FIN or RST
// leaves it), then its ftd (`side`) and the QEMU of `vm` die by SIGKILL. Returns when the
// links were cut (the moment of death as the rest of the lab sees it).
Result<Clock::time_point> KillHost(Lab& lab, const std::string& host, FtdInstance& side,
                                   const std::string& vm);
// KillHost of host A, where the pair's primary runs.
Result<Clock::time_point> KillPrimaryHost(Lab& lab, LockstepPair& pair);

// What one side runs for a VM, from its `ftctl status VM --json`.
struct SideView {
  bool reachable = false;  // ftctl answered with the VM's status
  // A running QEMU that is the primary and not halted.
  bool live = false;
  // A running QEMU whose NIC sends to the network: qemu_pid != 0 and outbound OUTBOUND_OPEN (a
  // protected or arbitrating primary's is OUTBOUND_GATED, a backup's OUTBOUND_DROP). Two such
  // copies of one VM at once are the split brain design rule 3 forbids.
  bool gate_open = false;
  // role, ft_state and failover_state as ftctl prints them: proto value names, compared with
  // ProtoName(proto::FT_ROLE_PRIMARY) and the like; failover_state "" without a failover block.
  std::string role, ft_state, ft_note, failover_state;
  uint64_t epoch = 0;
  int qemu_pid = 0;
  nlohmann::json status;  // null when ftctl did not answer
};
SideView ViewOf(FtdInstance& side, const std::string& vm);
// The same through ftd's control socket directly, not an ftctl process: a few ms instead of
// ~100 on two busy cores, for sampling both sides every 20 ms. Its `status` is the VmStatus
// as ftctl would print it (the same printer, ftd/cli/ftctl_json.h).
SideView ProbeOf(FtdInstance& side, const std::string& vm);
inline SideView View(LockstepPair& p, FtdInstance& side) { return ViewOf(side, p.vm()); }

// Polls `side` until its copy of `vm` runs live and unprotected (the backup went live), or
// fails after `timeout` (at once if its failover halted), with its status and log.
Status WaitUntilLive(FtdInstance& side, const std::string& vm, std::chrono::milliseconds timeout);
inline Status WaitUntilBackupLive(LockstepPair& p, std::chrono::milliseconds timeout) {
  return WaitUntilLive(p.backup(), p.vm(), timeout);
}

// Both ftds' log tails, labelled, for failure messages.
std::string BothLogs(FtdInstance& a, FtdInstance& b);
inline std::string BothLogs(LockstepPair& p) { return BothLogs(p.primary(), p.backup()); }

}  // namespace ft::testing
