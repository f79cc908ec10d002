#include "enabled_vms.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "ft/domain/vm_spec.h"
#include "ft/names.h"
#include "vm_records.h"

namespace ft::daemon {
namespace {

namespace fs = std::filesystem;
constexpr char kRecord[] = "enabled.conf";
constexpr uint32_t kVersion = 1;
constexpr std::string_view kVersionPrefix = "# ftd-enabled-vm ";
constexpr std::string_view kRolePrefix = "# role: ";
constexpr std::string_view kSourcePrefix = "# source: ";
// The CRC line is a comment too, so the file still reads as a [vm] section.
constexpr std::string_view kCrcLinePrefix = "# ";
// A VM section is a few hundred bytes; anything this big is not a record.
constexpr size_t kMaxRecordBytes = 1 << 20;

std::string RecordPath(const NodeConfig& node, const std::string& vm) {
  return PathsFor(node, vm).state_dir + "/" + kRecord;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// A source is one header line: control characters (a newline could start a line of its own,
// "# role: backup") become spaces.
std::string SanitizeSource(std::string_view source) {
  std::string out(source);
  for (char& c : out) {
    if (ft::IsControlCharacter(c)) c = ' ';
  }
  return out;
}

// Records written before the version and CRC lines (older ftd) have neither; a record that
// has either one is checked as a current one, so a damaged version line cannot make a
// record pass as legacy and skip its CRC.
bool IsVersioned(std::string_view text) {
  std::string_view last = text;
  if (!last.empty() && last.back() == '\n') last.remove_suffix(1);
  size_t nl = last.rfind('\n');
  last = nl == std::string_view::npos ? last : last.substr(nl + 1);
  return StartsWith(text, kVersionPrefix) ||
         StartsWith(last, std::string(kCrcLinePrefix) + "crc32");
}

Result<std::optional<EnabledVm>> ReadRecord(const std::string& path) {
  FT_ASSIGN_OR_RETURN(std::optional<std::string> text, ReadSmallFile(path, kMaxRecordBytes));
  if (!text) return std::optional<EnabledVm>();
  FT_ASSIGN_OR_RETURN(EnabledVm vm, DecodeEnabledVmRecord(path, *text));
  return std::optional<EnabledVm>(std::move(vm));
}

}  // namespace

std::string EncodeEnabledVmRecord(const EnabledVm& vm) {
  std::string text = fmt::format(
      "{}{}\n"
      "# ftd: fault tolerance turned on at run time; 'ftctl disable {}' removes it. A CRC "
      "protects this file: do not edit it.\n"
      "{}{}\n{}{}\n{}",
      kVersionPrefix, kVersion, vm.spec.name, kRolePrefix, FtRoleName(vm.role), kSourcePrefix,
      SanitizeSource(vm.source), FormatVmSection(vm.spec));
  return AppendCrcLine(std::move(text), kCrcLinePrefix);
}

// The role and source come only from the header: the comment lines before the [vm] section.
// A line in the section that looks like a header line (a cmdline with a newline in it) is
// not one.
Result<EnabledVm> DecodeEnabledVmRecord(const std::string& path, std::string_view text) {
  std::string_view content = text;
  if (IsVersioned(text)) {
    Result<std::string_view> checked = CheckCrcLine(text, kCrcLinePrefix);
    if (!checked.ok()) return checked.status().WithContext(fmt::format("'{}'", path));
    content = *checked;
    std::string_view first = content.substr(0, content.find('\n'));
    uint32_t version = 0;
    std::string_view digits =
        StartsWith(first, kVersionPrefix) ? first.substr(kVersionPrefix.size()) : "";
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), version);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) {
      return DataLoss(fmt::format("'{}': first line is not '{}<version>'", path, kVersionPrefix));
    }
    if (version != kVersion) {
      return FailedPrecondition(fmt::format(
          "'{}': enabled-VM record format version {}, written by a newer ftd; this ftd reads "
          "version {} only",
          path, version, kVersion));
    }
  }
  EnabledVm vm;
  bool has_role = false, has_source = false;
  for (std::string_view rest = content; !rest.empty();) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    size_t first = line.find_first_not_of(" \t");
    if (first != std::string_view::npos && line[first] == '[') break;  // the section starts
    if (StartsWith(line, kRolePrefix)) {
      std::string_view role = line.substr(kRolePrefix.size());
      if (has_role) return DataLoss(fmt::format("'{}' has two '{}' lines", path, kRolePrefix));
      if (role == "primary") {
        vm.role = FtRole::kPrimary;
      } else if (role == "backup") {
        vm.role = FtRole::kBackup;
      } else {
        return DataLoss(fmt::format("'{}': role '{}' is not primary or backup", path, role));
      }
      has_role = true;
    } else if (StartsWith(line, kSourcePrefix) && !has_source) {
      vm.source = std::string(line.substr(kSourcePrefix.size()));
      has_source = true;
    }
  }
  if (!has_role) {
    return DataLoss(
        fmt::format("'{}' has no '{}' line before its [vm] section", path, kRolePrefix));
  }
  auto spec = ParseVmSection(content, path);
  if (!spec.ok()) return DataLoss(spec.status().message());
  vm.spec = std::move(spec).value();
  return vm;
}

Status SaveEnabledVm(const NodeConfig& node, const EnabledVm& vm) {
  // Names and one-line values checked again here, where they become a file's lines.
  if (Status s = domain::ValidateVmSpec(vm.spec); !s.ok()) {
    return s.WithContext("its enabled.conf was not saved");
  }
  return WriteFileDurably(RecordPath(node, vm.spec.name), EncodeEnabledVmRecord(vm), 0600);
}

Status ForgetEnabledVm(const NodeConfig& node, const std::string& vm) {
  return RemoveFileDurably(RecordPath(node, vm));
}

Status PromoteEnabledVm(const NodeConfig& node, const std::string& vm) {
  FT_ASSIGN_OR_RETURN(std::optional<EnabledVm> record, ReadRecord(RecordPath(node, vm)));
  if (!record || record->role == FtRole::kPrimary) return Status::Ok();
  record->role = FtRole::kPrimary;
  return SaveEnabledVm(node, *record);
}

EnabledVmsOnDisk LoadEnabledVms(const NodeConfig& node) {
  EnabledVmsOnDisk out;
  fs::path dir = fs::path(node.state_dir) / "vms";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_directory(ec)) continue;
    std::string path = (entry.path() / kRecord).string();
    Result<std::optional<EnabledVm>> vm = ReadRecord(path);
    if (!vm.ok()) {
      out.damaged.push_back(vm.status());
      continue;
    }
    if (!*vm) continue;
    if ((*vm)->spec.name != entry.path().filename().string()) {
      out.damaged.push_back(
          DataLoss(fmt::format("'{}' defines vm '{}', not '{}'", path, (*vm)->spec.name,
                               entry.path().filename().string())));
      continue;
    }
    out.vms.push_back(std::move(**vm));
  }
  std::sort(out.vms.begin(), out.vms.end(),
            [](const EnabledVm& a, const EnabledVm& b) { return a.spec.name < b.spec.name; });
  return out;
}

}  // namespace ft::daemon
