// The protobuf messages ftd takes from outside: a logging-channel frame (anybody, before
// authentication), a peer request (the other ftd), a control request (ftctl over the control
// socket), and the answers ftctl and the peer link read. The first byte picks the message.
// What ftd does with one that parses, as far as it is pure, runs too: the checks on a
// Hello's text before anything of it is stored or logged, the printable form of a refusal's
// reason, the [vm] section of a protect or enable request, the names requests carry.
// Properties: a message that parses serializes to bytes that
// parse to the same message; text made printable has no control characters and keeps its
// bound; a [vm] section that parses names a valid VM.
#include <string>

#include <google/protobuf/stubs/logging.h>
#include "ft/daemon/config.h"
#include "ft/names.h"

#include "ft/proto/channel.pb.h"
#include "ft/proto/control.pb.h"
#include "ft/proto/field_rules.h"
#include "ft/proto/peer.pb.h"
#include "fuzz_support.h"
#include "handshake.h"
#include "preauth.h"

namespace {

// libprotobuf says "invalid UTF-8" on stderr for every other input.
const bool kQuietProtobuf = (google::protobuf::SetLogHandler(nullptr), true);

using namespace ft;

// Re-serializing what parsed gives bytes that parse to the same message.
template <typename Message>
bool ParsesAndRoundTrips(std::string_view bytes, Message* m) {
  if (!m->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return false;
  const std::string once = m->SerializeAsString();
  Message again;
  FT_FUZZ_CHECK(again.ParseFromString(once));
  FT_FUZZ_CHECK(again.SerializeAsString() == once);
  return true;
}

// PrintableText: no control byte survives, the bound holds, and printable text is a fixed
// point.
void CheckPrintable(const std::string& text, size_t max_bytes) {
  const std::string shown = PrintableText(text, max_bytes);
  const std::string cut_note = "…(" + std::to_string(text.size()) + " bytes)";
  FT_FUZZ_CHECK(shown.size() <= max_bytes + cut_note.size());
  for (unsigned char c : shown) FT_FUZZ_CHECK(c >= 0x20 && c != 0x7f);
  if (shown.size() <= max_bytes) {
    FT_FUZZ_CHECK(IsPrintableText(shown, max_bytes));
    FT_FUZZ_CHECK(PrintableText(shown, max_bytes) == shown);
  }
}

void CheckVmSection(const std::string& text) {
  auto spec = daemon::ParseVmSection(text, "fuzz");
  if (spec.ok()) FT_FUZZ_CHECK(IsValidName(spec->name));
}

void ChannelFrame(std::string_view bytes) {
  proto::ChannelFrame f;
  if (!ParsesAndRoundTrips(bytes, &f)) return;
  if (f.has_hello()) {
    const auto& hello = f.hello();
    if (channel::CheckHelloText(hello).ok()) {
      channel::Identity id = channel::IdentityOf(hello);
      FT_FUZZ_CHECK(IsPrintableText(id.node, channel::kMaxPeerNameBytes));
      FT_FUZZ_CHECK(id.vm.empty() || IsValidName(id.vm));
      proto::Hello filled;
      channel::FillHello(id, hello.nonce(), &filled);
      FT_FUZZ_CHECK(channel::IdentityOf(filled).node == id.node);
    }
    CheckPrintable(hello.node(), channel::kMaxPeerNameBytes);
  }
  if (f.has_refusal()) CheckPrintable(f.refusal().reason(), channel::kMaxRefusalReasonBytes);
}

void PeerRequest(std::string_view bytes) {
  proto::PeerRequest r;
  if (!ParsesAndRoundTrips(bytes, &r)) return;
  if (!proto::CheckFieldRules(r).ok()) return;  // refused before ftd acts on it
  switch (r.command_case()) {
    case proto::PeerRequest::kProtect:
      if (!r.protect().from_snapshot().empty()) {
        FT_FUZZ_CHECK(IsValidName(r.protect().from_snapshot()));
      }
      CheckVmSection(r.protect().vm_config());
      break;
    case proto::PeerRequest::kUnprotect:
      FT_FUZZ_CHECK(IsValidName(r.unprotect().vm()));
      FT_FUZZ_CHECK(IsPrintableText(r.unprotect().why(), r.unprotect().why().size()));
      break;
    case proto::PeerRequest::kHandover:
      FT_FUZZ_CHECK(IsValidName(r.handover().vm()));
      break;
    case proto::PeerRequest::kStatus:
      FT_FUZZ_CHECK(IsValidName(r.status().vm()));
      break;
    case proto::PeerRequest::kReplicaBegin:
      FT_FUZZ_CHECK(IsValidName(r.replica_begin().vm()) && IsValidName(r.replica_begin().disk()));
      break;
    case proto::PeerRequest::kReplicaChunk:
      FT_FUZZ_CHECK(IsValidName(r.replica_chunk().vm()) && IsValidName(r.replica_chunk().disk()));
      break;
    case proto::PeerRequest::kReplicaEnd:
      FT_FUZZ_CHECK(IsValidName(r.replica_end().vm()) && IsValidName(r.replica_end().disk()));
      break;
    case proto::PeerRequest::COMMAND_NOT_SET:
      break;
  }
}

void ControlRequest(std::string_view bytes) {
  proto::ControlRequest r;
  if (!ParsesAndRoundTrips(bytes, &r)) return;
  if (!proto::CheckFieldRules(r).ok()) return;
  switch (r.command_case()) {
    case proto::ControlRequest::kStatus:
      FT_FUZZ_CHECK(IsValidName(r.status().vm()));
      break;
    case proto::ControlRequest::kEnable:
      FT_FUZZ_CHECK(r.enable().vm().empty() || IsValidName(r.enable().vm()));
      CheckVmSection(r.enable().vm_config());
      break;
    case proto::ControlRequest::kDisable:
      FT_FUZZ_CHECK(IsValidName(r.disable().vm()));
      break;
    case proto::ControlRequest::kFailover:
      FT_FUZZ_CHECK(IsValidName(r.failover().vm()));
      break;
    case proto::ControlRequest::kDrill:
      FT_FUZZ_CHECK(IsValidName(r.drill().vm()));
      break;
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 5) {
    case 0:
      ChannelFrame(bytes);
      break;
    case 1:
      PeerRequest(bytes);
      break;
    case 2:
      ControlRequest(bytes);
      break;
    case 3: {
      proto::PeerResponse r;
      ParsesAndRoundTrips(bytes, &r);
      break;
    }
    case 4: {
      proto::ControlResponse r;
      ParsesAndRoundTrips(bytes, &r);
      break;
    }
  }
  return 0;
}
