#include "ft/replay/vm_state_drive.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "ft/replay/process.h"

namespace ft::replay {

namespace {

// Runs qemu-img (bounded); its output, or an error naming `what` and quoting qemu-img.
Result<std::string> RunQemuImg(const std::vector<std::string>& args, const std::string& what,
                               const std::string& scratch,
                               std::chrono::seconds timeout = std::chrono::seconds(20)) {
  std::vector<std::string> argv = {"qemu-img"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string output = scratch + ".qemu-img.log";
  SpawnOptions options;
  options.output_path = output;
  auto child = ChildProcess::Spawn(argv, options);
  if (!child.ok()) return child.status().WithContext(what);
  auto exit = (*child)->WaitFor(timeout);
  if (!exit) exit = (*child)->Terminate(std::chrono::milliseconds(500));
  std::string said = TailOfFile(output, 4000);
  std::error_code ec;
  std::filesystem::remove(output, ec);
  if (!exit || !exit->clean()) {
    return Unavailable(fmt::format(
        "{}: qemu-img {}: {}", what,
        exit ? exit->Describe() : fmt::format("did not finish within {} s", timeout.count()),
        said.empty() ? "no output" : said));
  }
  return said;
}

}  // namespace

Status CreateVmStateDrive(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove(path, ec);  // a stale one may hold an old snapshot
  return RunQemuImg({"create", "-q", "-f", "qcow2", path, "1M"},
                    fmt::format("creating the VM-state drive '{}'", path), path)
      .status();
}

Status DeleteStaleFtSnapshots(const std::string& image, const std::string& scratch) {
  FT_ASSIGN_OR_RETURN(std::string list,
                      RunQemuImg({"snapshot", "-l", "-U", image},
                                 fmt::format("listing the snapshots of '{}'", image), scratch));
  for (const char* name : {kGoLiveSnapshot, kReprotectSnapshot, kBaseSnapshot}) {
    if (list.find(std::string(" ") + name + " ") == std::string::npos) continue;
    FT_RETURN_IF_ERROR(
        RunQemuImg({"snapshot", "-d", name, image},
                   fmt::format("deleting the stale snapshot '{}' of '{}'", name, image), scratch)
            .status());
  }
  return Status::Ok();
}

Status CreateDiskSnapshot(const std::string& image, const std::string& name,
                          const std::string& scratch) {
  return RunQemuImg({"snapshot", "-c", name, image},
                    fmt::format("creating snapshot '{}' in '{}'", name, image), scratch)
      .status();
}

Status ExportDiskSnapshot(const std::string& image, const std::string& name,
                          const std::string& out) {
  std::error_code ec;
  std::filesystem::remove(out, ec);
  Status s = RunQemuImg({"convert", "-U", "-f", "qcow2", "-O", "qcow2", "-l",
                         "snapshot.name=" + name, image, out},
                        fmt::format("exporting snapshot '{}' of '{}' to '{}'", name, image, out),
                        out, std::chrono::seconds(1800))
                 .status();
  if (!s.ok()) std::filesystem::remove(out, ec);
  return s;
}

}  // namespace ft::replay
