// A protected pair in the network lab with a client talking to the guest: what the output
// commit and failover tests (and benchmarks) share.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "guest_client.h"
#include "lab.h"
#include "lockstep_pair.h"

namespace ft::testing {

// The guest with nondeterministic console output, its NIC served by ftd in the lab.
LockstepOptions LabPairOptions(Lab& lab);

// Starts the pair and waits until the primary is protected.
Result<std::unique_ptr<LockstepPair>> StartProtected(const LockstepOptions& options);

// Connects a client in the lab's client namespace to the guest's stream service.
Status ConnectClient(Lab& lab, StreamClient& client);

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

// Kills host A the way a power cut does: its links go first (no FIN or RST leaves it), then
// its ftd and QEMU die by SIGKILL. Returns when the links were cut (the moment of death as
// the rest of the lab sees it).
Result<Clock::time_point> KillPrimaryHost(Lab& lab, LockstepPair& pair);

}  // namespace ft::testing
