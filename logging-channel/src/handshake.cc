#include "handshake.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdio>

#include "ft/proto/channel.pb.h"
#include "preauth.h"

namespace ft::channel {
namespace {

void AppendU32(std::string& s, uint32_t v) {
  s.push_back(static_cast<char>(v >> 24));
  s.push_back(static_cast<char>(v >> 16));
  s.push_back(static_cast<char>(v >> 8));
  s.push_back(static_cast<char>(v));
}

std::string Node(const Identity& id) { return "'" + id.node + "'"; }

std::string ShownStoreId(const std::string& id) {
  return id.empty() ? "(id unknown: not read)" : AbbreviateDigest(id);
}

// How one side decides failovers, for the "failover differs" sentence.
std::string FailoverOf(const Identity& id) {
  if (!id.failover) return "has no claim store (no [node] shared_storage)";
  if (id.store_id.empty()) return "uses a claim store";
  return "uses claim store " + AbbreviateDigest(id.store_id);
}

// "a VM's log", "peer control": for messages.
const char* ServiceName(Service service) {
  switch (service) {
    case Service::kVmLog:
      return "a VM's log";
    case Service::kPeerControl:
      return "peer control";
  }
  return "an unknown service";
}

}  // namespace

Result<std::string> MakeNonce() {
  std::string nonce(kNonceBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()), static_cast<int>(kNonceBytes)) !=
      1) {
    return Internal("cannot draw a handshake nonce: the OpenSSL random generator failed");
  }
  return nonce;
}

std::string HandshakeMac(std::string_view key, Role role, std::string_view own_nonce,
                         std::string_view peer_nonce, std::string_view own_hello_frame,
                         std::string_view peer_hello_frame) {
  std::string input;
  input.reserve(kMacLabel.size() + 1 + own_nonce.size() + peer_nonce.size() + 8 +
                own_hello_frame.size() + peer_hello_frame.size());
  input.append(kMacLabel);
  input.push_back(static_cast<char>(role));
  input.append(own_nonce);
  input.append(peer_nonce);
  AppendU32(input, static_cast<uint32_t>(own_hello_frame.size()));
  input.append(own_hello_frame);
  AppendU32(input, static_cast<uint32_t>(peer_hello_frame.size()));
  input.append(peer_hello_frame);

  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), out, &out_len);
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

bool MacMatches(std::string_view expected, std::string_view received) {
  return expected.size() == received.size() &&
         CRYPTO_memcmp(expected.data(), received.data(), expected.size()) == 0;
}

void FillHello(const Identity& self, std::string_view nonce, proto::Hello* hello) {
  hello->set_protocol_version(kProtocolVersion);
  hello->set_node(self.node);
  hello->set_vm(self.vm);
  hello->set_config_digest(self.config_digest);
  hello->set_rr_version(self.rr_version);
  hello->set_epoch(self.epoch);
  hello->set_nonce(nonce.data(), nonce.size());
  hello->set_replica_digest(self.replica_digest);
  hello->set_failover(self.failover);
  hello->set_store_id(self.store_id);
  hello->set_service(static_cast<proto::Service>(self.service));
}

Identity IdentityOf(const proto::Hello& hello) {
  Identity id;
  id.node = hello.node();
  id.vm = hello.vm();
  id.config_digest = hello.config_digest();
  id.rr_version = hello.rr_version();
  id.epoch = hello.epoch();
  id.replica_digest = hello.replica_digest();
  id.failover = hello.failover();
  id.store_id = hello.store_id();
  id.service = static_cast<Service>(hello.service());  // CheckHelloText checked it
  return id;
}

Status CheckHelloText(const proto::Hello& hello) {
  const struct {
    const char* what;
    const std::string& value;
    size_t max;
  } fields[] = {
      {"node name", hello.node(), kMaxPeerNameBytes},
      {"vm name", hello.vm(), kMaxPeerNameBytes},
      {"config digest", hello.config_digest(), kMaxPeerDigestBytes},
      {"replica digest", hello.replica_digest(), kMaxPeerDigestBytes},
      {"store id", hello.store_id(), kMaxPeerDigestBytes},
  };
  for (const auto& f : fields) {
    if (!ft::IsPrintableText(f.value, f.max)) {
      return ProtocolError("sent a hello whose " + std::string(f.what) +
                           " is not printable text of at most " + std::to_string(f.max) +
                           " bytes: '" + ft::PrintableText(f.value, f.max) + "'");
    }
  }
  // The name becomes file names on this host, so it follows the one rule for names.
  if (!hello.vm().empty()) {
    if (Status s = ft::CheckName("hello.vm", hello.vm()); !s.ok()) {
      return ProtocolError("sent a hello whose " + s.message());
    }
  }
  return Status::Ok();
}

Status CheckHelloService(const proto::Hello& hello) {
  // A VM's session names its VM, the peers' own session none.
  switch (hello.service()) {
    case proto::SERVICE_VM_LOG:
      if (hello.vm().empty()) return ProtocolError("sent a hello for a VM's log that names no vm");
      return Status::Ok();
    case proto::SERVICE_PEER_CONTROL:
      if (!hello.vm().empty()) {
        return ProtocolError("sent a peer-control hello that names vm '" + hello.vm() + "'");
      }
      return Status::Ok();
    default:
      return ProtocolError("sent a hello for service " + std::to_string(hello.service()) +
                           ", not one this host serves (a VM's log or peer control)");
  }
}

std::string AbbreviateDigest(const std::string& digest) {
  constexpr size_t kShown = 12;
  if (digest.empty()) return "(none)";
  if (digest.size() <= kShown + 4) return digest;
  return digest.substr(0, kShown) + "…";
}

std::string RrVersionHex(uint32_t v) {
  char s[16];
  std::snprintf(s, sizeof s, "0x%08x", v);
  return s;
}

Status CompareIdentities(const Identity& self, const Identity& peer) {
  const std::string who = "peer " + Node(peer);
  const std::string me = "this host " + Node(self);
  if (self.service != peer.service) {
    return FailedPrecondition("service differs: " + who + " asks for " + ServiceName(peer.service) +
                              " but " + me + " serves " + ServiceName(self.service));
  }
  if (self.vm != peer.vm) {
    return FailedPrecondition("vm name differs: " + who + " speaks for vm '" + peer.vm + "' but " +
                              me + " for vm '" + self.vm + "'");
  }
  const std::string vm =
      self.service == Service::kPeerControl ? "peer control: " : "vm '" + self.vm + "': ";
  if (self.node == peer.node) {
    return FailedPrecondition(vm + "the peer is also named '" + peer.node +
                              "'; the two hosts' node names must differ (a failover claim "
                              "names its winner by node)");
  }
  // One arbiter for the pair: never two hosts deciding failovers each on its own.
  if (self.failover != peer.failover) {
    return FailedPrecondition(vm + "failover differs: " + who + " " + FailoverOf(peer) + " but " +
                              me + " " + FailoverOf(self) +
                              "; both hosts must set shared_storage to the same mounted claim "
                              "store, or neither");
  }
  if (self.failover && self.service == Service::kVmLog && self.store_id != peer.store_id) {
    return FailedPrecondition(
        vm + "claim store differs: " + who + " uses claim store " + ShownStoreId(peer.store_id) +
        " but " + me + " uses " + ShownStoreId(self.store_id) +
        "; the two hosts must mount the same shared storage (is it mounted on both? 'ftctl "
        "init-storage' prints a store's id)");
  }
  if (self.config_digest != peer.config_digest) {
    return FailedPrecondition(vm + "config digest differs: " + who + " has " +
                              AbbreviateDigest(peer.config_digest) + " but " + me + " has " +
                              AbbreviateDigest(self.config_digest) +
                              "; the two hosts' VM definitions differ");
  }
  if (self.rr_version != peer.rr_version) {
    return FailedPrecondition(
        vm + "rr log version differs: " + who + " has " + RrVersionHex(peer.rr_version) + " but " +
        me + " has " + RrVersionHex(self.rr_version) + "; the hosts run different QEMU builds");
  }
  if (self.replica_digest != peer.replica_digest) {
    return FailedPrecondition(
        vm + "disk replicas differ: " + who + " has " + AbbreviateDigest(peer.replica_digest) +
        " but " + me + " has " + AbbreviateDigest(self.replica_digest) +
        " (sha256 of the disk images when each side started); replay needs the backup's "
        "replica to be the primary's image as it was at the primary's start: copy it again "
        "(ftctl enable does) while the VM is stopped");
  }
  if (self.epoch != peer.epoch) {
    return FailedPrecondition(
        vm + "epoch differs: " + who + " is at epoch " + std::to_string(peer.epoch) + " but " + me +
        " is at epoch " + std::to_string(self.epoch) + "; one host missed a failover or an enable");
  }
  return Status::Ok();
}

}  // namespace ft::channel
