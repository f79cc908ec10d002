#include "enabled_vms.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "ft/daemon/vm_runner.h"

namespace ft::daemon {
namespace {

namespace fs = std::filesystem;
constexpr char kRecord[] = "enabled.conf";
constexpr char kRolePrefix[] = "# role: ";
constexpr char kSourcePrefix[] = "# source: ";

std::string RecordPath(const NodeConfig& node, const std::string& vm) {
  return PathsFor(node, vm).state_dir + "/" + kRecord;
}

Result<EnabledVm> ParseRecord(const std::string& path, const std::string& text) {
  EnabledVm vm;
  std::istringstream in(text);
  bool has_role = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(kRolePrefix, 0) == 0) {
      std::string role = line.substr(sizeof kRolePrefix - 1);
      if (role == "primary") {
        vm.role = FtRole::kPrimary;
      } else if (role == "backup") {
        vm.role = FtRole::kBackup;
      } else {
        return DataLoss(fmt::format("'{}': role '{}' is not primary or backup", path, role));
      }
      has_role = true;
    } else if (line.rfind(kSourcePrefix, 0) == 0) {
      vm.source = line.substr(sizeof kSourcePrefix - 1);
    }
  }
  if (!has_role) return DataLoss(fmt::format("'{}' has no '{}' line", path, kRolePrefix));
  auto spec = ParseVmSection(text, path);
  if (!spec.ok()) return DataLoss(spec.status().message());
  vm.spec = std::move(spec).value();
  return vm;
}

}  // namespace

Status SaveEnabledVm(const NodeConfig& node, const EnabledVm& vm) {
  std::string path = RecordPath(node, vm.spec.name), tmp = path + ".tmp";
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  std::string text = std::string("# ftd: fault tolerance turned on at run time; 'ftctl disable ") +
                     vm.spec.name + "' removes it. Do not edit while ftd runs.\n" + kRolePrefix +
                     FtRoleName(vm.role) + "\n" + kSourcePrefix + vm.source + "\n" +
                     FormatVmSection(vm.spec);
  // Written, fsynced and renamed, then the directory fsynced: after a power cut the record
  // is the old one or the new one, never empty.
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(fmt::format("cannot write '{}'", tmp), errno);
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            fsync(fd) == 0;
  int err = errno;
  close(fd);
  if (!ok) return ErrnoStatus(fmt::format("cannot write '{}'", tmp), err);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(fmt::format("cannot replace '{}'", path), errno);
  }
  int dir = open(fs::path(path).parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    fsync(dir);
    close(dir);
  }
  return Status::Ok();
}

Status ForgetEnabledVm(const NodeConfig& node, const std::string& vm) {
  std::string path = RecordPath(node, vm);
  std::error_code ec;
  if (!fs::remove(path, ec) && ec) {
    return Internal(fmt::format("cannot remove '{}': {}", path, ec.message()));
  }
  return Status::Ok();
}

Status PromoteEnabledVm(const NodeConfig& node, const std::string& vm) {
  std::string path = RecordPath(node, vm);
  std::ifstream in(path);
  if (!in) return Status::Ok();
  std::stringstream text;
  text << in.rdbuf();
  FT_ASSIGN_OR_RETURN(EnabledVm record, ParseRecord(path, text.str()));
  if (record.role == FtRole::kPrimary) return Status::Ok();
  record.role = FtRole::kPrimary;
  return SaveEnabledVm(node, record);
}

EnabledVmsOnDisk LoadEnabledVms(const NodeConfig& node) {
  EnabledVmsOnDisk out;
  fs::path dir = fs::path(node.state_dir) / "vms";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    fs::path record = entry.path() / kRecord;
    if (!fs::exists(record, ec)) continue;
    std::ifstream in(record);
    std::stringstream text;
    text << in.rdbuf();
    if (!in.good() && !in.eof()) {
      out.damaged.push_back(ErrnoStatus(fmt::format("cannot read '{}'", record.string()), errno));
      continue;
    }
    auto vm = ParseRecord(record.string(), text.str());
    if (!vm.ok()) {
      out.damaged.push_back(vm.status());
      continue;
    }
    if (vm->spec.name != entry.path().filename().string()) {
      out.damaged.push_back(DataLoss(fmt::format("'{}' defines vm '{}', not '{}'",
                                                 record.string(), vm->spec.name,
                                                 entry.path().filename().string())));
      continue;
    }
    out.vms.push_back(std::move(vm).value());
  }
  std::sort(out.vms.begin(), out.vms.end(),
            [](const EnabledVm& a, const EnabledVm& b) { return a.spec.name < b.spec.name; });
  return out;
}

}  // namespace ft::daemon
