#include "lab_pair.h"

#include <fmt/format.h>

namespace ft::testing {

using namespace std::chrono_literals;

LockstepOptions LabPairOptions(Lab& lab) {
  LockstepOptions options;
  options.vm.workload = "timer,chaos";
  options.vm.data_disk = false;
  options.lab = &lab;
  return options;
}

Result<std::unique_ptr<LockstepPair>> StartProtected(const LockstepOptions& options) {
  FT_ASSIGN_OR_RETURN(auto pair, LockstepPair::Start(options));
  Status protected_ = pair->WaitForFtState(pair->primary(), "protected", 60s);
  if (!protected_.ok()) {
    return protected_.WithContext("primary's ftd log:\n" + ReadFile(pair->primary().ftd_log()));
  }
  return pair;
}

Status ConnectClient(Lab& lab, StreamClient& client) {
  Status connected;
  FT_RETURN_IF_ERROR(
      RunInNetns(lab.ns_client(), [&] { connected = client.Connect(lab.vm_ip(), 7000, 90s); }));
  return connected;
}

Status Converse(StreamClient& client, int lines, std::chrono::milliseconds timeout) {
  for (int i = 0; i < lines / 10; ++i) {
    FT_RETURN_IF_ERROR(client.SendEcho(fmt::format("echo-{}", client.stream_lines())));
    FT_RETURN_IF_ERROR(client.ReadStream(10, timeout));
  }
  return client.AwaitEchoes(timeout);
}

}  // namespace ft::testing
