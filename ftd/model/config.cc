#include "ft/daemon/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "ft/names.h"
#include "ft/unique_fd.h"

namespace ft::daemon {
namespace {

namespace fs = std::filesystem;
using domain::DiskBus;
using domain::DiskSpec;
using domain::HostForward;
using domain::NicBackend;
using domain::NicSpec;
using domain::VmSpec;

// An empty qemu would mean "the default" on one host and "no binary" on the next: a [vm]
// section that travels to the peer must name the same binary on both.
constexpr const char* kEmptyQemu =
    "is empty; name a QEMU binary, or leave the key out for "
    "qemu-system-x86_64 from PATH";

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return (fs::path(base_dir) / path).lexically_normal().string();
}

template <typename T>
bool ParseNumber(const std::string& text, T& out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && p == text.data() + text.size();
}

// "127.0.0.1:17000 -> 7000"
Result<HostForward> ParseForward(const std::string& value) {
  auto arrow = value.find("->");
  if (arrow == std::string::npos) {
    return InvalidArgument(
        fmt::format("'{}' is not of the form HOST_IP:PORT -> GUEST_PORT", value));
  }
  std::string host = Trim(value.substr(0, arrow));
  std::string guest = Trim(value.substr(arrow + 2));
  auto colon = host.rfind(':');
  if (colon == std::string::npos) {
    return InvalidArgument(fmt::format("'{}' has no port after the host address", host));
  }
  HostForward fwd;
  fwd.host_address = host.substr(0, colon);
  in_addr addr{};
  if (inet_pton(AF_INET, fwd.host_address.c_str(), &addr) != 1) {
    return InvalidArgument(fmt::format("'{}' is not a numeric IPv4 address", fwd.host_address));
  }
  if (!ParseNumber(host.substr(colon + 1), fwd.host_port) || fwd.host_port == 0) {
    return InvalidArgument(fmt::format("host port '{}' is not 1..65535", host.substr(colon + 1)));
  }
  if (!ParseNumber(guest, fwd.guest_port) || fwd.guest_port == 0) {
    return InvalidArgument(fmt::format("guest port '{}' is not 1..65535", guest));
  }
  return fwd;
}

// "10.0.0.2:7400" (numeric IPv4 or a host name, port 1..65535)
Status ParseHostPort(const std::string& value, std::string& host, uint16_t& port) {
  auto colon = value.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return InvalidArgument(fmt::format("'{}' is not of the form ADDRESS:PORT", value));
  }
  host = value.substr(0, colon);
  if (!ParseNumber(value.substr(colon + 1), port) || port == 0) {
    return InvalidArgument(fmt::format("port '{}' is not 1..65535", value.substr(colon + 1)));
  }
  return Status::Ok();
}

class Parser {
 public:
  Parser(std::string source, std::string base_dir)
      : source_(std::move(source)), base_dir_(std::move(base_dir)) {}

  Result<Config> Parse(std::string_view text) {
    config_.source = source_;
    std::istringstream in{std::string(text)};
    std::string raw;
    while (std::getline(in, raw)) {
      ++line_;
      std::string s = Trim(raw);
      if (s.empty() || s[0] == '#' || s[0] == ';') continue;
      if (s.front() == '[') {
        FT_RETURN_IF_ERROR(OpenSection(s));
        continue;
      }
      auto eq = s.find('=');
      if (eq == std::string::npos) return Error("expected 'key = value' or '[section]'");
      std::string key = Trim(s.substr(0, eq));
      std::string value = Trim(s.substr(eq + 1));
      if (key.empty()) return Error("empty key before '='");
      if (section_ == Section::kNone) {
        return Error(
            fmt::format("key '{}' outside a section; start with [node] or [vm NAME]", key));
      }
      FT_RETURN_IF_ERROR(section_ == Section::kNode ? NodeKey(key, value) : VmKey(key, value));
    }
    return Finish();
  }

 private:
  enum class Section { kNone, kNode, kVm };

  Status Error(const std::string& what) const {
    return InvalidArgument(fmt::format("{}:{}: {}", source_, line_, what));
  }
  Status KeyError(const std::string& key, const std::string& what) const {
    return Error(fmt::format("[{}] {}: {}", SectionName(), key, what));
  }
  std::string SectionName() const {
    return section_ == Section::kNode ? "node" : "vm " + config_.vms.back().name;
  }

  Status OpenSection(const std::string& s) {
    if (s.back() != ']') return Error(fmt::format("section header '{}' lacks ']'", s));
    std::string inner = Trim(s.substr(1, s.size() - 2));
    if (inner == "node") {
      if (seen_node_) return Error("[node] appears twice");
      seen_node_ = true;
      section_ = Section::kNode;
      return Status::Ok();
    }
    if (inner.rfind("vm ", 0) == 0 || inner.rfind("vm\t", 0) == 0) {
      std::string name = Trim(inner.substr(3));
      if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
        name = name.substr(1, name.size() - 2);
      }
      if (!ft::IsValidName(name)) {
        return Error(
            fmt::format("vm name '{}' is not valid: use letters, digits, '_', '.', '-'", name));
      }
      for (const auto& vm : config_.vms) {
        if (vm.name == name) return Error(fmt::format("[vm {}] appears twice", name));
      }
      VmSpec spec;
      spec.name = name;
      config_.vms.push_back(spec);
      seen_keys_.clear();
      section_ = Section::kVm;
      return Status::Ok();
    }
    return Error(fmt::format("unknown section '[{}]'; known: [node], [vm NAME]", inner));
  }

  Status NodeKey(const std::string& key, const std::string& value) {
    auto& node = config_.node;
    if (key == "name") {
      if (!ft::IsValidName(value))
        return KeyError(key, fmt::format("'{}' is not a valid node name", value));
      node.name = value;
    } else if (key == "state_dir") {
      node.state_dir = Resolve(base_dir_, value);
    } else if (key == "run_dir") {
      node.run_dir = Resolve(base_dir_, value);
    } else if (key == "control_socket") {
      node.control_socket = Resolve(base_dir_, value);
    } else if (key == "log_level") {
      static const char* kLevels[] = {"trace", "debug", "info", "warn", "error"};
      bool known = false;
      for (auto* l : kLevels) known = known || value == l;
      if (!known)
        return KeyError(key,
                        fmt::format("'{}' is not one of trace, debug, info, warn, error", value));
      node.log_level = value;
    } else if (key == "listen") {
      if (auto st = ParseHostPort(value, node.channel.listen_host, node.channel.listen_port);
          !st.ok())
        return KeyError(key, st.message());
    } else if (key == "peer") {
      if (auto st = ParseHostPort(value, node.channel.peer_host, node.channel.peer_port); !st.ok())
        return KeyError(key, st.message());
    } else if (key == "qemu") {
      if (value.empty()) return KeyError(key, kEmptyQemu);
      config_.node.qemu = value.find('/') == std::string::npos ? value : Resolve(base_dir_, value);
    } else if (key == "shared_storage") {
      node.shared_storage = Resolve(base_dir_, value);
    } else if (key == "reprotect") {
      if (value != "auto" && value != "manual")
        return KeyError(key, fmt::format("'{}' is not one of auto, manual", value));
      node.reprotect_auto = value == "auto";
    } else if (key == "channel_key_file") {
      node.channel.key_file = Resolve(base_dir_, value);
    } else if (key == "heartbeat_interval_ms") {
      return Ranged(key, value, 10, 10000, node.channel.heartbeat_interval_ms);
    } else if (key == "heartbeat_timeout_ms") {
      return Ranged(key, value, 50, 60000, node.channel.heartbeat_timeout_ms);
    } else if (key == "max_lag_ms") {
      return Ranged(key, value, 10, 600000, node.channel.max_lag_ms);
    } else if (key == "max_unacked_mib") {
      return Ranged(key, value, 1, 4096, node.channel.max_unacked_mib);
    } else {
      return KeyError(key,
                      "unknown key; known keys: name, state_dir, run_dir, control_socket, "
                      "log_level, listen, peer, shared_storage, reprotect, qemu, channel_key_file, "
                      "heartbeat_interval_ms, "
                      "heartbeat_timeout_ms, max_lag_ms, max_unacked_mib");
    }
    return Status::Ok();
  }

  Status Ranged(const std::string& key, const std::string& value, int lo, int hi, int& out) {
    if (!ParseNumber(value, out) || out < lo || out > hi)
      return KeyError(key, fmt::format("'{}' is not a number in {}..{}", value, lo, hi));
    return Status::Ok();
  }

  NicSpec& Nic() {
    auto& vm = config_.vms.back();
    if (!vm.nic) vm.nic = NicSpec{};
    return *vm.nic;
  }

  DiskSpec& Disk(const std::string& id) {
    auto& vm = config_.vms.back();
    for (auto& d : vm.disks) {
      if (d.id == id) return d;
    }
    DiskSpec d;
    d.id = id;
    vm.disks.push_back(d);
    return vm.disks.back();
  }

  Status VmKey(const std::string& key, const std::string& value) {
    auto& vm = config_.vms.back();
    // Every key but 'forward' (a list) may appear once per section.
    if (key != "forward" && !seen_keys_.emplace(key, line_).second) {
      return KeyError(key, fmt::format("set twice (first on line {})", seen_keys_[key]));
    }
    if (key == "memory_mib") {
      if (!ParseNumber(value, vm.memory_mib))
        return KeyError(key, fmt::format("'{}' is not a number", value));
    } else if (key == "icount_shift") {
      if (!ParseNumber(value, vm.icount_shift))
        return KeyError(key, fmt::format("'{}' is not a number", value));
    } else if (key == "kernel") {
      vm.kernel = Resolve(base_dir_, value);
    } else if (key == "initrd") {
      vm.initrd = Resolve(base_dir_, value);
    } else if (key == "cmdline") {
      vm.cmdline = value;
    } else if (key == "qemu") {
      if (value.empty()) return KeyError(key, kEmptyQemu);
      vm.qemu_binary = value.find('/') == std::string::npos ? value : Resolve(base_dir_, value);
    } else if (key.rfind("disk.", 0) == 0) {
      return DiskKey(key, value);
    } else if (key == "nic") {
      auto& nic = Nic();
      if (value == "user")
        nic.backend = NicBackend::kUser;
      else if (value == "stream")
        nic.backend = NicBackend::kStream;
      else if (value == "tap")
        nic.backend = NicBackend::kTap;
      else if (value == "bridge")
        nic.backend = NicBackend::kBridge;
      else if (value == "none")
        vm.nic.reset();
      else
        return KeyError(key,
                        fmt::format("'{}' is not one of user, stream, tap, bridge, none", value));
    } else if (key == "nic_model") {
      // Only e1000 records and replays (virtio-net + filter-replay hangs in replay).
      if (value != "e1000") {
        return KeyError(key, fmt::format("'{}' cannot be protected: replay of virtio-net hangs "
                                         "in QEMU 7.2; use e1000",
                                         value));
      }
    } else if (key == "mac") {
      Nic().mac = value;
    } else if (key == "forward") {
      auto fwd = ParseForward(value);
      if (!fwd.ok()) return KeyError(key, fwd.status().message());
      Nic().forwards.push_back(*fwd);
    } else if (key == "nic_socket") {
      Nic().socket_path = Resolve(base_dir_, value);
    } else if (key == "tap") {
      Nic().tap_name = value;
    } else if (key == "bridge") {
      Nic().bridge = value;
    } else if (key == "ft") {
      FtRole role;
      if (value == "off")
        role = FtRole::kOff;
      else if (value == "primary")
        role = FtRole::kPrimary;
      else if (value == "backup")
        role = FtRole::kBackup;
      else
        return KeyError(key, fmt::format("'{}' is not one of off, primary, backup", value));
      config_.roles[vm.name] = role;
    } else {
      return KeyError(key,
                      "unknown key; known keys: memory_mib, kernel, initrd, cmdline, qemu, "
                      "icount_shift, disk.ID, disk.ID.format, disk.ID.bus, nic, nic_model, mac, "
                      "forward, nic_socket, tap, bridge, ft");
    }
    return Status::Ok();
  }

  Status DiskKey(const std::string& key, const std::string& value) {
    std::string rest = key.substr(5);
    auto dot = rest.find('.');
    std::string id = rest.substr(0, dot);
    std::string field = dot == std::string::npos ? "" : rest.substr(dot + 1);
    if (!ft::IsValidName(id)) return KeyError(key, fmt::format("disk id '{}' is not valid", id));
    auto& disk = Disk(id);
    if (field.empty()) {
      disk.path = Resolve(base_dir_, value);
    } else if (field == "format") {
      if (value != "qcow2" && value != "raw") {
        return KeyError(key, fmt::format("'{}' is not one of qcow2, raw", value));
      }
      disk.format = value;
    } else if (field == "bus") {
      if (value == "virtio")
        disk.bus = DiskBus::kVirtio;
      else if (value == "ide")
        disk.bus = DiskBus::kIde;
      else
        return KeyError(
            key,
            fmt::format("bus '{}' cannot be recorded and replayed; supported: virtio, ide", value));
    } else {
      return KeyError(key, "unknown disk field; known: disk.ID, disk.ID.format, disk.ID.bus");
    }
    return Status::Ok();
  }

  Result<Config> Finish() {
    if (config_.node.name.empty()) {
      char host[256] = {};
      gethostname(host, sizeof host - 1);
      config_.node.name = host[0] ? host : "localhost";
    }
    if (config_.node.control_socket.empty()) {
      config_.node.control_socket = (fs::path(config_.node.run_dir) / "ftd.sock").string();
    }
    for (const auto& vm : config_.vms) {
      for (const auto& disk : vm.disks) {
        if (disk.path.empty()) {
          return InvalidArgument(
              fmt::format("{}: [vm {}] disk.{}: image path is missing", source_, vm.name, disk.id));
        }
      }
      if (auto s = domain::ValidateVmSpec(vm); !s.ok()) {
        return InvalidArgument(fmt::format("{}: {}", source_, s.message()));
      }
      FtRole role = config_.RoleOf(vm.name);
      const auto& ch = config_.node.channel;
      for (const auto& disk : vm.disks) {
        if (role != FtRole::kOff && disk.format != "qcow2") {
          return InvalidArgument(fmt::format(
              "{}: [vm {}] disk.{}: a protected VM's disks must be qcow2 ({} cannot hold the "
              "snapshot a backup goes live from); convert it: qemu-img convert -O qcow2 {} "
              "NEW.qcow2",
              source_, vm.name, disk.id, disk.format, disk.path));
        }
      }
      if (role != FtRole::kOff && ch.key_file.empty()) {
        return InvalidArgument(
            fmt::format("{}: [vm {}] ft = {} needs [node] channel_key_file (no key, no log)",
                        source_, vm.name, FtRoleName(role)));
      }
      if (role == FtRole::kPrimary && ch.peer_host.empty()) {
        return InvalidArgument(fmt::format(
            "{}: [vm {}] ft = primary needs [node] peer = ADDRESS:PORT (the backup's ftd)", source_,
            vm.name));
      }
      if (role == FtRole::kBackup && ch.listen_host.empty()) {
        return InvalidArgument(fmt::format(
            "{}: [vm {}] ft = backup needs [node] listen = ADDRESS:PORT for its primary", source_,
            vm.name));
      }
    }
    if (config_.node.channel.heartbeat_timeout_ms <= config_.node.channel.heartbeat_interval_ms) {
      return InvalidArgument(fmt::format(
          "{}: [node] heartbeat_timeout_ms ({}) must be larger than heartbeat_interval_ms ({})",
          source_, config_.node.channel.heartbeat_timeout_ms,
          config_.node.channel.heartbeat_interval_ms));
    }
    return std::move(config_);
  }

  std::string source_;
  std::string base_dir_;
  Config config_;
  Section section_ = Section::kNone;
  bool seen_node_ = false;
  std::map<std::string, int> seen_keys_;
  int line_ = 0;
};

Status CheckReadable(const std::string& vm, const std::string& key, const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return NotFound(fmt::format("vm '{}': {} '{}' does not exist", vm, key, path));
  }
  if (!fs::is_regular_file(path, ec)) {
    return InvalidArgument(fmt::format("vm '{}': {} '{}' is not a regular file", vm, key, path));
  }
  if (access(path.c_str(), R_OK) != 0) {
    return ErrnoStatus(fmt::format("vm '{}': {} '{}' is not readable", vm, key, path), errno);
  }
  return Status::Ok();
}

Status CheckImage(const std::string& vm, const DiskSpec& disk) {
  std::string key = "disk." + disk.id;
  FT_RETURN_IF_ERROR(CheckReadable(vm, key, disk.path));
  if (access(disk.path.c_str(), W_OK) != 0) {
    return ErrnoStatus(fmt::format("vm '{}': {} '{}' is not writable", vm, key, disk.path), errno);
  }
  if (disk.format == "qcow2") {
    std::ifstream in(disk.path, std::ios::binary);
    char magic[4] = {};
    in.read(magic, 4);
    if (in.gcount() != 4 || std::string_view(magic, 4) != std::string_view("QFI\xfb", 4)) {
      return InvalidArgument(
          fmt::format("vm '{}': {} '{}' is not a qcow2 image (set {}.format = raw if it is raw)",
                      vm, key, disk.path, key));
    }
  }
  return Status::Ok();
}

bool IsExecutable(const std::string& program) {
  if (program.find('/') != std::string::npos) return access(program.c_str(), X_OK) == 0;
  const char* path = getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && access((fs::path(dir) / program).c_str(), X_OK) == 0) return true;
  }
  return false;
}

// The channel key: a private regular file (0600 or stricter) owned by ftd's user or root, at
// most kMaxKeyFileBytes, at least 16 bytes after trimming. Whoever can write it can forge the
// peer's identity: a key owned by another user, or a link to a file elsewhere, is refused.
constexpr size_t kMaxKeyFileBytes = 4096;

Status LoadChannelKey(ChannelConfig& channel) {
  if (channel.key_file.empty()) return Status::Ok();
  const std::string what = fmt::format("channel_key_file '{}'", channel.key_file);
  UniqueFd fd(::open(channel.key_file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (fd.get() < 0) {
    if (errno == ELOOP) {
      return PermissionDenied(what + " is a symbolic link; name the key file itself");
    }
    return ErrnoStatus(what, errno);
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus(what, errno);
  if (!S_ISREG(st.st_mode)) return InvalidArgument(what + " is not a regular file");
  if (st.st_uid != geteuid() && st.st_uid != 0) {
    return PermissionDenied(fmt::format(
        "{} is owned by uid {}, not by ftd's user (uid {}) or root: that user could change "
        "the key; chown it",
        what, st.st_uid, geteuid()));
  }
  if (st.st_mode & 077) {
    return PermissionDenied(fmt::format(
        "{} is readable by group or others (mode {:o}); chmod 600 it", what, st.st_mode & 0777));
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxKeyFileBytes) {
    return InvalidArgument(fmt::format("{} holds {} bytes; a key file is at most {}", what,
                                       st.st_size, kMaxKeyFileBytes));
  }
  std::string key(kMaxKeyFileBytes, '\0');
  ssize_t n = ::read(fd.get(), key.data(), key.size());
  if (n < 0) return ErrnoStatus("cannot read " + what, errno);
  key.resize(static_cast<size_t>(n));
  size_t b = key.find_first_not_of(" \t\r\n"), e = key.find_last_not_of(" \t\r\n");
  channel.key = b == std::string::npos ? "" : key.substr(b, e - b + 1);
  if (channel.key.size() < 16) {
    return InvalidArgument(
        fmt::format("channel_key_file '{}' holds {} bytes; use at least 16 random bytes (e.g. "
                    "'openssl rand -hex 32 > {}')",
                    channel.key_file, channel.key.size(), channel.key_file));
  }
  return Status::Ok();
}

}  // namespace

Result<Config> ParseConfig(std::string_view text, const std::string& source,
                           const std::string& base_dir) {
  return Parser(source, base_dir).Parse(text);
}

Status CheckVmFiles(const domain::VmSpec& vm) {
  if (!IsExecutable(vm.qemu_binary)) {
    return NotFound(
        fmt::format("vm '{}': qemu '{}' is not an executable program (is "
                    "qemu-system-x86 installed?)",
                    vm.name, vm.qemu_binary));
  }
  FT_RETURN_IF_ERROR(CheckReadable(vm.name, "kernel", vm.kernel));
  if (!vm.initrd.empty()) FT_RETURN_IF_ERROR(CheckReadable(vm.name, "initrd", vm.initrd));
  for (const auto& disk : vm.disks) FT_RETURN_IF_ERROR(CheckImage(vm.name, disk));
  return Status::Ok();
}

Status CheckConfigFiles(const Config& config) {
  for (const auto& vm : config.vms) FT_RETURN_IF_ERROR(CheckVmFiles(vm));
  return Status::Ok();
}

std::string FormatVmSection(const domain::VmSpec& spec) {
  std::string out = fmt::format("[vm {}]\n", spec.name);
  auto key = [&out](const std::string& k, const std::string& v) {
    if (!v.empty()) out += fmt::format("{} = {}\n", k, v);
  };
  key("memory_mib", std::to_string(spec.memory_mib));
  key("icount_shift", std::to_string(spec.icount_shift));
  key("qemu", spec.qemu_binary);
  key("kernel", spec.kernel);
  key("initrd", spec.initrd);
  key("cmdline", spec.cmdline);
  for (const auto& d : spec.disks) {
    key("disk." + d.id, d.path);
    key("disk." + d.id + ".format", d.format);
    key("disk." + d.id + ".bus", domain::DiskBusName(d.bus));
  }
  if (!spec.nic) {
    key("nic", "none");
    return out;
  }
  const auto& nic = *spec.nic;
  key("nic", domain::NicBackendName(nic.backend));
  key("nic_model", "e1000");
  key("mac", nic.mac);
  for (const auto& f : nic.forwards) {
    key("forward", fmt::format("{}:{} -> {}", f.host_address, f.host_port, f.guest_port));
  }
  key("nic_socket", nic.socket_path);
  key("tap", nic.tap_name);
  key("bridge", nic.bridge);
  return out;
}

Result<domain::VmSpec> ParseVmSection(std::string_view text, const std::string& source) {
  std::istringstream lines{std::string(text)};
  for (std::string line; std::getline(lines, line);) {
    auto eq = line.find('=');
    if (eq != std::string::npos && Trim(line.substr(0, eq)) == "ft") {
      return InvalidArgument(fmt::format(
          "{}: sets ft; a VM's role comes from the command, not its definition", source));
    }
  }
  FT_ASSIGN_OR_RETURN(Config config, ParseConfig(text, source, "/"));
  if (config.vms.size() != 1) {
    return InvalidArgument(
        fmt::format("{}: expected one [vm NAME] section, found {}", source, config.vms.size()));
  }
  return config.vms[0];
}

Result<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return ErrnoStatus(fmt::format("cannot read config '{}'", path), errno);
  std::stringstream text;
  text << in.rdbuf();
  std::string base = fs::path(path).parent_path().string();
  FT_ASSIGN_OR_RETURN(Config config, ParseConfig(text.str(), path, base));
  FT_RETURN_IF_ERROR(CheckConfigFiles(config).WithContext(path));
  FT_RETURN_IF_ERROR(LoadChannelKey(config.node.channel).WithContext(path));
  return config;
}

VmPaths PathsFor(const NodeConfig& node, const std::string& vm_name) {
  VmPaths p;
  p.state_dir = (fs::path(node.state_dir) / "vms" / vm_name).string();
  p.run_dir = (fs::path(node.run_dir) / vm_name).string();
  p.console_log = p.state_dir + "/console.log";
  p.qemu_log = p.state_dir + "/qemu.log";
  p.qmp_socket = p.run_dir + "/qmp.sock";
  p.monitor_socket = p.run_dir + "/monitor.sock";
  p.pid_file = p.run_dir + "/qemu.pid";
  p.nic_socket = p.run_dir + "/nic.sock";
  p.vm_state_drive = p.run_dir + "/vm-state.qcow2";
  return p;
}

}  // namespace ft::daemon
