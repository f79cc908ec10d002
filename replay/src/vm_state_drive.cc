#include "ft/replay/vm_state_drive.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>

#include <fmt/format.h>

#include "ft/replay/process.h"

namespace ft::replay {

Status CreateVmStateDrive(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove(path, ec);  // a stale one may hold an old snapshot
  std::string output = path + ".qemu-img.log";
  SpawnOptions options;
  options.output_path = output;
  auto child = ChildProcess::Spawn({"qemu-img", "create", "-q", "-f", "qcow2", path, "1M"}, options);
  if (!child.ok()) {
    return child.status().WithContext(fmt::format("creating the VM-state drive '{}'", path));
  }
  auto exit = (*child)->WaitFor(std::chrono::seconds(20));
  std::string said = TailOfFile(output, 600);
  std::filesystem::remove(output, ec);
  if (!exit) {
    return Timeout(
        fmt::format("qemu-img did not create the VM-state drive '{}' within 20 s", path));
  }
  if (!exit->clean()) {
    return Unavailable(fmt::format("qemu-img could not create the VM-state drive '{}' ({}): {}",
                                   path, exit->Describe(), said.empty() ? "no output" : said));
  }
  return Status::Ok();
}

}  // namespace ft::replay
