// A protected pair in the network lab with a client talking to the guest: what the output
// commit and failover tests (and benchmarks) share.
#pragma once

#include <chrono>
#include <memory>

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

}  // namespace ft::testing
