#include "enabled_vms.h"

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
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "# ftd: fault tolerance turned on at run time; 'ftctl disable " << vm.spec.name
        << "' removes it. Do not edit while ftd runs.\n"
        << kRolePrefix << FtRoleName(vm.role) << "\n"
        << kSourcePrefix << vm.source << "\n"
        << FormatVmSection(vm.spec);
    if (!out.flush()) return ErrnoStatus(fmt::format("cannot write '{}'", tmp), errno);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(fmt::format("cannot replace '{}'", path), errno);
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

Result<std::vector<EnabledVm>> LoadEnabledVms(const NodeConfig& node) {
  std::vector<EnabledVm> vms;
  fs::path dir = fs::path(node.state_dir) / "vms";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return vms;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    fs::path record = entry.path() / kRecord;
    if (!fs::exists(record, ec)) continue;
    std::ifstream in(record);
    std::stringstream text;
    text << in.rdbuf();
    if (!in.good() && !in.eof()) {
      return ErrnoStatus(fmt::format("cannot read '{}'", record.string()), errno);
    }
    FT_ASSIGN_OR_RETURN(EnabledVm vm, ParseRecord(record.string(), text.str()));
    if (vm.spec.name != entry.path().filename().string()) {
      return DataLoss(fmt::format("'{}' defines vm '{}', not '{}'", record.string(), vm.spec.name,
                                  entry.path().filename().string()));
    }
    vms.push_back(std::move(vm));
  }
  std::sort(vms.begin(), vms.end(),
            [](const EnabledVm& a, const EnabledVm& b) { return a.spec.name < b.spec.name; });
  return vms;
}

}  // namespace ft::daemon
