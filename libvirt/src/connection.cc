#include "ft/libvirt/connection.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include <fmt/format.h>

namespace ft::libvirt {
namespace {

// libvirt's default handler prints every error to stderr; ours are returned as Status.
void IgnoreError(void* /*user_data*/, virErrorPtr /*error*/) {}

void InitializeOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    virInitialize();
    virSetErrorFunc(nullptr, IgnoreError);
  });
}

// libvirt's message for the last failed call on this thread.
std::string LastError() {
  const char* message = virGetLastErrorMessage();
  return message != nullptr && *message != '\0' ? message : "unknown libvirt error";
}

struct DomainFree {
  void operator()(virDomainPtr domain) const { virDomainFree(domain); }
};
using DomainHandle = std::unique_ptr<virDomain, DomainFree>;

struct CharFree {
  void operator()(char* text) const { std::free(text); }
};

}  // namespace

struct Connection::Handle {
  std::string uri;
  virConnectPtr conn = nullptr;

  ~Handle() {
    if (conn != nullptr) virConnectClose(conn);
  }

  // Errors from calls on an open connection: a lost daemon is kUnavailable, anything else
  // is libvirt's answer (kRemote).
  Status CallError(const std::string& what) const {
    int code = virGetLastErrorCode();
    std::string message = fmt::format("libvirt at {}: {}: {}", uri, what, LastError());
    if (code == VIR_ERR_NO_CONNECT || code == VIR_ERR_RPC || code == VIR_ERR_SYSTEM_ERROR ||
        code == VIR_ERR_AUTH_FAILED || code == VIR_ERR_AUTH_UNAVAILABLE) {
      return Unavailable(message);
    }
    return RemoteError(message);
  }
};

Connection::Connection(std::unique_ptr<Handle> handle) : handle_(std::move(handle)) {}

Connection::~Connection() = default;

const std::string& Connection::uri() const { return handle_->uri; }

Result<std::unique_ptr<Connection>> Connection::Open(std::string_view uri) {
  InitializeOnce();
  auto handle = std::make_unique<Handle>();
  handle->uri = std::string(uri);
  handle->conn = virConnectOpenReadOnly(handle->uri.c_str());
  if (handle->conn == nullptr) {
    return Unavailable(fmt::format("libvirt at {} is not reachable: {} (is libvirtd running?)",
                                   handle->uri, LastError()));
  }
  // Errors on this connection go to the thread's last error only, never to stderr.
  virConnSetErrorFunc(handle->conn, nullptr, IgnoreError);
  return std::unique_ptr<Connection>(new Connection(std::move(handle)));
}

Result<std::vector<DomainInfo>> Connection::ListDomains() {
  virDomainPtr* domains = nullptr;
  int count = virConnectListAllDomains(handle_->conn, &domains, 0);
  if (count < 0) return handle_->CallError("listing domains");
  std::vector<DomainHandle> owned;
  owned.reserve(count);
  for (int i = 0; i < count; ++i) owned.emplace_back(domains[i]);
  std::free(domains);

  std::vector<DomainInfo> infos;
  for (const auto& domain : owned) {
    DomainInfo info;
    const char* name = virDomainGetName(domain.get());
    if (name == nullptr) return handle_->CallError("reading a domain's name");
    info.name = name;
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    if (virDomainGetUUIDString(domain.get(), uuid) < 0) {
      return handle_->CallError(fmt::format("reading domain '{}'", info.name));
    }
    info.uuid = uuid;
    int active = virDomainIsActive(domain.get());
    int persistent = virDomainIsPersistent(domain.get());
    if (active < 0 || persistent < 0) {
      return handle_->CallError(fmt::format("reading domain '{}'", info.name));
    }
    info.active = active == 1;
    info.persistent = persistent == 1;
    infos.push_back(std::move(info));
  }
  std::sort(infos.begin(), infos.end(),
            [](const DomainInfo& a, const DomainInfo& b) { return a.name < b.name; });
  return infos;
}

Result<std::string> Connection::DomainXml(std::string_view name) {
  std::string domain_name(name);
  DomainHandle domain(virDomainLookupByName(handle_->conn, domain_name.c_str()));
  if (!domain) {
    if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN) {
      return NotFound(fmt::format("libvirt at {} has no domain '{}'", handle_->uri, domain_name));
    }
    return handle_->CallError(fmt::format("looking up domain '{}'", domain_name));
  }
  std::unique_ptr<char, CharFree> xml(virDomainGetXMLDesc(domain.get(), VIR_DOMAIN_XML_INACTIVE));
  if (!xml) return handle_->CallError(fmt::format("reading domain '{}'", domain_name));
  return std::string(xml.get());
}

}  // namespace ft::libvirt
