#include "ft/shared_disk/mount_point.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>

#include <fmt/format.h>

namespace ft::shared_disk {
namespace {

bool IsOctal(char c) { return c >= '0' && c <= '7'; }

// mountinfo writes space, tab, newline and backslash in paths as "\ooo".
std::string UnescapeMountInfoPath(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && IsOctal(s[i + 1]) && IsOctal(s[i + 2]) &&
        IsOctal(s[i + 3])) {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

bool MountInfoListsMountPoint(std::string_view mountinfo, std::string_view path) {
  while (!mountinfo.empty()) {
    size_t nl = mountinfo.find('\n');
    std::string_view line = mountinfo.substr(0, nl);
    mountinfo.remove_prefix(nl == std::string_view::npos ? mountinfo.size() : nl + 1);
    // "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw": the 5th field.
    for (int field = 0; field < 4; ++field) {
      size_t space = line.find(' ');
      line.remove_prefix(space == std::string_view::npos ? line.size() : space + 1);
    }
    if (UnescapeMountInfoPath(line.substr(0, line.find(' '))) == path) return true;
  }
  return false;
}

Result<bool> IsMountPoint(const std::string& path) {
  std::unique_ptr<char, decltype(&::free)> resolved(::realpath(path.c_str(), nullptr), &::free);
  if (!resolved) {
    return Unavailable(fmt::format("cannot resolve '{}': {}", path, std::strerror(errno)));
  }
  const std::string real = resolved.get();
  if (real == "/") return true;
  struct stat self {};
  struct stat parent {};
  if (::stat(real.c_str(), &self) != 0 || ::stat((real + "/..").c_str(), &parent) != 0) {
    return Unavailable(fmt::format("cannot stat '{}': {}", real, std::strerror(errno)));
  }
  if (self.st_dev != parent.st_dev) return true;
  // Unreadable (no /proc): the device check alone decides, which misses only bind mounts.
  std::ifstream in("/proc/self/mountinfo", std::ios::binary);
  std::string mountinfo(std::istreambuf_iterator<char>(in), {});
  return MountInfoListsMountPoint(mountinfo, real);
}

}  // namespace ft::shared_disk
