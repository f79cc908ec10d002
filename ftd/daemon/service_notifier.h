// ftd as a systemd service (Type=notify): READY=1, STATUS= with the VMs' FT states,
// WATCHDOG=1 from the event loop, STOPPING=1. Outside systemd (no NOTIFY_SOCKET) every call
// does nothing. The systemd and Asio headers stay in the .cc.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ft/daemon/managed_vm.h"

namespace asio {
class io_context;
}

namespace ft::daemon {

// The STATUS= text `systemctl status ftd` shows: how many VMs there are, how many run, and
// how many are in each FT state, e.g. "3 VMs, 3 running: 1 protected, 1 replaying,
// 1 unprotected". Pure.
std::string ServiceStatusLine(const std::vector<VmReport>& vms);

class ServiceNotifier {
 public:
  // `status` gives the current STATUS= text; it is called on `io`'s thread.
  ServiceNotifier(asio::io_context& io, std::function<std::string()> status);
  ~ServiceNotifier();
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  // READY=1 with the status. From now on, timers on `io` ping the watchdog (every half of
  // WATCHDOG_USEC, when systemd enabled it for this process) and send STATUS= when it
  // changes: a loop that stops turning stops the pings, and systemd restarts ftd.
  void Ready();
  // STOPPING=1; the pings and status go on while the VMs stop, until Close().
  void Stopping();
  // Cancels the timers, so that io_context::run() can return.
  void Close();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace ft::daemon
