#include "ft/net/tap_device.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <functional>

#include <fmt/format.h>

namespace ft::net {
namespace {

// A socket for interface ioctls, closed on scope exit.
struct IoctlSocket {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ~IoctlSocket() {
    if (fd >= 0) close(fd);
  }
};

void CopyName(ifreq& ifr, const std::string& name) {
  std::memset(&ifr, 0, sizeof ifr);
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
}

}  // namespace

std::string TapNameFor(const std::string& vm) {
  std::string name = "ft-" + vm;
  if (name.size() < IFNAMSIZ) return name;
  return fmt::format("ft-{}-{:04x}", vm.substr(0, 6), std::hash<std::string>{}(vm)&0xffff);
}

Result<OpenedTap> CreateTap(const std::string& name, const std::string& bridge) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return InvalidArgument(
        fmt::format("TAP name '{}' must be 1..{} characters", name, IFNAMSIZ - 1));
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open /dev/net/tun to create the VM's TAP device", errno);
  ifreq ifr;
  CopyName(ifr, name);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    int err = errno;
    close(fd);
    return ErrnoStatus(fmt::format("cannot create TAP device '{}'", name), err);
  }
  OpenedTap tap{fd, ifr.ifr_name};
  IoctlSocket sock;
  if (sock.fd < 0) {
    close(fd);
    return ErrnoStatus("cannot open a socket for interface ioctls", errno);
  }
  CopyName(ifr, tap.name);
  if (ioctl(sock.fd, SIOCGIFINDEX, &ifr) != 0) {
    int err = errno;
    close(fd);
    return ErrnoStatus(fmt::format("TAP device '{}' has no interface index", tap.name), err);
  }
  int index = ifr.ifr_ifindex;
  CopyName(ifr, bridge);
  ifr.ifr_ifindex = index;
  if (ioctl(sock.fd, SIOCBRADDIF, &ifr) != 0) {
    int err = errno;
    close(fd);
    if (err == ENODEV) {
      return NotFound(fmt::format(
          "bridge '{}' does not exist in ftd's network namespace (TAP '{}' not attached)", bridge,
          tap.name));
    }
    return ErrnoStatus(fmt::format("cannot attach TAP '{}' to bridge '{}'", tap.name, bridge), err);
  }
  return tap;
}

Status SetLinkUp(const std::string& name, bool up) {
  IoctlSocket sock;
  if (sock.fd < 0) return ErrnoStatus("cannot open a socket for interface ioctls", errno);
  ifreq ifr;
  CopyName(ifr, name);
  if (ioctl(sock.fd, SIOCGIFFLAGS, &ifr) != 0) {
    return ErrnoStatus(fmt::format("cannot read the flags of interface '{}'", name), errno);
  }
  if (up) {
    ifr.ifr_flags |= IFF_UP;
  } else {
    ifr.ifr_flags &= ~IFF_UP;
  }
  if (ioctl(sock.fd, SIOCSIFFLAGS, &ifr) != 0) {
    return ErrnoStatus(fmt::format("cannot set interface '{}' {}", name, up ? "up" : "down"),
                       errno);
  }
  return Status::Ok();
}

}  // namespace ft::net
