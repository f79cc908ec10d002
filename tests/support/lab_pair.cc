#include "lab_pair.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>

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

Result<std::unique_ptr<ClaimStore>> ClaimStore::Create() {
  static std::atomic<int> counter{0};
  std::string dir = fmt::format("/tmp/ftd-test-claims-{}-{}", getpid(), counter++);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) return Internal(fmt::format("cannot create '{}': {}", dir, ec.message()));
  std::unique_ptr<ClaimStore> store(new ClaimStore(dir));
  auto out = RunCommand({FtctlBinary(), "init-storage", dir}, 10s);
  if (out.exit_code != 0) return Internal("ftctl init-storage failed: " + out.output);
  return store;
}

ClaimStore::~ClaimStore() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  std::filesystem::remove_all(dir_ + ".away", ec);
}

Status ClaimStore::TakeAway() {
  std::error_code ec;
  std::filesystem::rename(dir_, dir_ + ".away", ec);
  return ec ? Internal("cannot move the claim store away: " + ec.message()) : Status::Ok();
}

Status ClaimStore::GiveBack() {
  std::error_code ec;
  std::filesystem::rename(dir_ + ".away", dir_, ec);
  return ec ? Internal("cannot bring the claim store back: " + ec.message()) : Status::Ok();
}

Result<Clock::time_point> KillPrimaryHost(Lab& lab, LockstepPair& pair) {
  auto st = pair.Status(pair.primary());
  int qemu = st.ok() ? st->value("qemu_pid", 0) : 0;
  FT_RETURN_IF_ERROR(lab.Run({"cut-host", "a"}));
  auto cut_at = Clock::now();
  pair.primary().process()->Signal(SIGKILL);
  if (qemu > 0) kill(qemu, SIGKILL);  // ftd's child; its PDEATHSIG would do it too
  pair.primary().process()->WaitFor(10s);
  return cut_at;
}

}  // namespace ft::testing
