// The network lab (scripts/lab.sh, docs/lab.md) for one test or benchmark: two hypervisor
// namespaces, a switch and a client namespace, brought up on Create and torn down in the
// destructor, whatever happened. Each lab gets its own name prefix.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "ft/status.h"

namespace ft::testing {

class Lab {
 public:
  // Skips (returns FailedPrecondition) when not root: tests turn that into GTEST_SKIP.
  static Result<std::unique_ptr<Lab>> Create();
  ~Lab();

  const std::string& prefix() const { return prefix_; }
  // A value of `lab.sh env`, e.g. "FTLAB_NS_A", "FTLAB_VM_IP" ("" if unknown).
  std::string Get(const std::string& key) const;
  std::string ns_a() const { return Get("FTLAB_NS_A"); }
  std::string ns_b() const { return Get("FTLAB_NS_B"); }
  std::string ns_client() const { return Get("FTLAB_NS_C"); }
  std::string vm_ip() const { return Get("FTLAB_VM_IP"); }
  std::string b_channel_ip() const { return Get("FTLAB_B_FT_IP"); }
  std::string bridge() const { return Get("FTLAB_HOST_BRIDGE"); }
  // Runs `lab.sh ARGS...` for this lab (e.g. {"cut-channel"}).
  Status Run(const std::vector<std::string>& args);

 private:
  Lab() = default;
  std::string prefix_, dir_;
  std::map<std::string, std::string> env_;
};

// Runs `fn` on a thread that has joined network namespace `ns`; sockets it creates stay in
// that namespace and may be used from any thread afterwards.
Status RunInNetns(const std::string& ns, const std::function<void()>& fn);

}  // namespace ft::testing
