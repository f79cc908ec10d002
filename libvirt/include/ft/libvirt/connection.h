// A read-only view of libvirt's domains: list them, read one's definition. Thin RAII over
// libvirt's C API (libvirt.h stays in connection.cc). Errors name the URI and the domain and
// carry libvirt's own message; libvirt itself prints nothing (its error handler is replaced).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ft/status.h"

namespace ft::libvirt {

inline constexpr std::string_view kSystemUri = "qemu:///system";

struct DomainInfo {
  std::string name;
  std::string uuid;         // "0f9f8ce2-2ba3-4077-9724-a902256be80e"
  bool active = false;      // running (or paused) under libvirt now
  bool persistent = false;  // defined, not just a transient domain
};

// Where domain definitions come from; a seam so callers can be tested without libvirtd.
class DomainReader {
 public:
  virtual ~DomainReader() = default;
  // Every domain, active or not, sorted by name.
  virtual Result<std::vector<DomainInfo>> ListDomains() = 0;
  // The domain's persistent definition (VIR_DOMAIN_XML_INACTIVE): what it boots from next,
  // not the live state of a running domain. kNotFound when there is no such domain.
  virtual Result<std::string> DomainXml(std::string_view name) = 0;
};

class Connection final : public DomainReader {
 public:
  // Opens `uri` read-only (listing and reading definitions need no write access).
  // kUnavailable when libvirtd cannot be reached:
  // "libvirt at qemu:///system is not reachable: <libvirt's message> (is libvirtd running?)".
  static Result<std::unique_ptr<Connection>> Open(std::string_view uri = kSystemUri);

  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::string& uri() const;

  Result<std::vector<DomainInfo>> ListDomains() override;
  Result<std::string> DomainXml(std::string_view name) override;

 private:
  struct Handle;
  explicit Connection(std::unique_ptr<Handle> handle);
  std::unique_ptr<Handle> handle_;
};

}  // namespace ft::libvirt
