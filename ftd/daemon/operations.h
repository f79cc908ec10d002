// Internal to ftd: what the operator asks for (ftctl over the control socket) and what the
// peer ftd asks for (peer_link), acting on the daemon's VMs. Enable adds a VM at run time on
// both hosts; disable removes the backup and lets the primary run on; failover hands a VM to
// the backup without losing anything; a drill kills the primary copy for real and reports
// how the backup took over. Everything runs on the daemon's io_context thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ft/daemon/config.h"
#include "ft/daemon/control_socket.h"
#include "ft/daemon/managed_vm.h"

namespace asio {
class io_context;
}

namespace ft::daemon {

class Operations {
 public:
  // `vms` is the daemon's list; operations add to it and remove from it.
  Operations(asio::io_context& io, const Config& config,
             std::vector<std::unique_ptr<ManagedVm>>& vms);
  ~Operations();

  // VMs kept in the state dir by earlier enables, started in their roles; a VM also in
  // ftd.conf is skipped with an error (the config file wins).
  Status StartEnabledVms();
  // ftd is stopping: operations still under way create no VM any more (an enable whose copy
  // finishes later gives the peer's backup back and answers that ftd is stopping).
  void Stop();
  // The VM named `name`, or null.
  ManagedVm* Find(const std::string& name) const;

  // A ControlRequest from ftctl; `respond` gets the ControlResponse, once.
  void HandleControl(const std::string& request, ControlServer::Respond respond);
  // A PeerRequest from the peer ftd; `respond` gets the PeerResponse, once.
  void HandlePeer(const std::string& request, std::function<void(std::string)> respond);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace ft::daemon
