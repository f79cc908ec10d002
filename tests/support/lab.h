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
  // FailedPrecondition when not root: tests turn that into a skip (SKIP_WITHOUT_LAB).
  static Result<std::unique_ptr<Lab>> Create();
  ~Lab();

  const std::string& prefix() const { return prefix_; }
  // A value of `lab.sh env`, e.g. "FTLAB_NS_A", "FTLAB_VM_IP" ("" if unknown).
  std::string Get(const std::string& key) const;
  std::string ns_a() const { return Get("FTLAB_NS_A"); }
  std::string ns_b() const { return Get("FTLAB_NS_B"); }
  std::string ns_client() const { return Get("FTLAB_NS_C"); }
  // The switch: host A's port to the VM network is `a-vm` there, host B's `b-vm`.
  std::string ns_switch() const { return Get("FTLAB_NS_SW"); }
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

// True when an integration test may not skip for want of root, a lab or libvirtd: CI=true in
// the environment. A CI run where every lab test skips would pass without testing anything.
bool SkippingIsFailure();

}  // namespace ft::testing

// For test files (they include <gtest/gtest.h>). Skips the test for `reason`, or fails it
// under CI=true (SkippingIsFailure). Returns from the enclosing void function either way.
#define FT_SKIP_OR_FAIL_IN_CI(reason)                                                     \
  do {                                                                                    \
    if (::ft::testing::SkippingIsFailure()) {                                             \
      FAIL() << "CI=true: this integration test must run, but cannot here: " << (reason); \
    }                                                                                     \
    GTEST_SKIP() << (reason);                                                             \
  } while (0)

// `lab` is Lab::Create()'s result: no lab for want of root skips (fails under CI=true);
// any other failure to build it fails the test.
#define SKIP_WITHOUT_LAB(lab)                                                          \
  if (!(lab).ok() && (lab).status().code() == ::ft::StatusCode::kFailedPrecondition) { \
    FT_SKIP_OR_FAIL_IN_CI((lab).status().ToString());                                  \
  }                                                                                    \
  ASSERT_TRUE((lab).ok()) << (lab).status().ToString()

namespace ft::testing {

// Runs `fn` on a thread that has joined network namespace `ns`; sockets it creates stay in
// that namespace and may be used from any thread afterwards.
Status RunInNetns(const std::string& ns, const std::function<void()>& fn);

}  // namespace ft::testing
