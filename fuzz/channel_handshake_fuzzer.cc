// The logging channel's handshake and open session (logging-channel/src/session.cc), driven
// through a real Connection on loopback by a scripted peer: as the acceptor (the script
// connects to a Listener) and as the connector (Connect() reaches the script). The script can
// send raw bytes, any frame, and the honest steps (a Hello, the Auth computed with the channel
// key over the hellos seen so far, Welcome), then session frames. Properties:
//  - a session opens only for a peer that sent the Auth computed with the key;
//  - log chunks are delivered in order, contiguous from offset 0;
//  - whatever the script sends, nothing crashes, leaks or reads out of bounds.
//
// Script: byte 0: bit 0 = the Connection is the connector; bit 1 = a peer-control session
// (vm "") rather than vm "web1". Then ops (byte % 10) until the input ends:
//   0 RAW u8 n + n bytes    1 FRAME u8 n + n bytes (framed with its CRC)
//   2 HELLO  3 AUTH  4 WELCOME
//   5 LOG u8 n + n bytes at the next offset   6 ACK u8 offset, u8 icount
//   7 HEARTBEAT u8 sent, u8 echo   8 MESSAGE u8 n + n bytes   9 the Connection sends u8 n log bytes
#include <asio.hpp>
#include <memory>
#include <optional>
#include <string>

#include <google/protobuf/stubs/logging.h>
#include "frame.h"
#include "ft/channel/session.h"

#include "ft/proto/channel.pb.h"
#include "fuzz_support.h"
#include "handshake.h"

namespace {

// libprotobuf says "invalid UTF-8" on stderr for every other input.
const bool kQuietProtobuf = (google::protobuf::SetLogHandler(nullptr), true);

using namespace ft;
using namespace ft::channel;
using namespace std::chrono_literals;

const std::string kKey(32, 'k');

Identity Side(const std::string& node, const std::string& vm) {
  Identity id;
  id.node = node;
  id.vm = vm;
  id.service = vm.empty() ? Service::kPeerControl : Service::kVmLog;
  id.config_digest = "c0ffee";
  id.rr_version = 0x00e0200c;
  id.epoch = 3;
  return id;
}

Options TestOptions() {
  Options o;
  o.key = kKey;
  // Nothing time-driven during an input: the script decides what happens.
  o.heartbeat_interval = 60s;
  o.heartbeat_timeout = 120s;
  o.handshake_timeout = 120s;
  return o;
}

class Script {
 public:
  Script(std::string_view in) : in_(in) {}
  bool done() const { return in_.empty(); }
  uint8_t Byte() {
    if (in_.empty()) return 0;
    uint8_t b = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return b;
  }
  std::string_view Bytes() {
    size_t n = std::min<size_t>(Byte(), in_.size());
    std::string_view b = in_.substr(0, n);
    in_.remove_prefix(n);
    return b;
  }

 private:
  std::string_view in_;
};

// The scripted end of the connection: a plain blocking socket on the fuzzer's side.
class Peer {
 public:
  Peer(asio::io_context& io, asio::ip::tcp::socket socket, Role role, Identity self)
      : io_(io), socket_(std::move(socket)), role_(role), self_(std::move(self)) {
    socket_.set_option(asio::socket_base::linger(true, 0));  // close = reset: no TIME_WAIT
    // Without it Nagle holds a small frame while the previous one is unacked, and Pump()
    // would return before the Connection has seen it.
    socket_.set_option(asio::ip::tcp::no_delay(true));
  }

  // Runs the Connection's handlers until it has nothing left to do, reading what it sent.
  void Pump() {
    for (int idle = 0; idle < 2;) {
      io_.restart();
      size_t ran = io_.poll();
      ran += Read();
      idle = ran == 0 ? idle + 1 : 0;
    }
  }

  void Write(std::string_view bytes) {
    std::error_code ec;
    socket_.non_blocking(false, ec);
    asio::write(socket_, asio::buffer(bytes.data(), bytes.size()), ec);
  }
  void WriteFrame(const proto::ChannelFrame& f) { WriteFramePayload(f.SerializeAsString()); }
  void WriteFramePayload(std::string_view payload) {
    proto::ChannelFrame f;
    if (f.ParseFromArray(payload.data(), static_cast<int>(payload.size())) && f.has_hello()) {
      my_hello_ = std::string(payload);
      my_nonce_ = f.hello().nonce();
    }
    Write(EncodeFrame(payload));
  }

  void Hello() {
    proto::ChannelFrame f;
    FillHello(self_, std::string(kNonceBytes, 'n'), f.mutable_hello());
    WriteFrame(f);
  }
  // The mac an honest peer sends: over its last hello and the Connection's first.
  void Auth() {
    proto::ChannelFrame f;
    f.mutable_auth()->set_mac(
        HandshakeMac(kKey, role_, my_nonce_, their_nonce_, my_hello_, their_hello_));
    WriteFrame(f);
    sent_auth_ = true;
  }
  bool sent_auth() const { return sent_auth_; }

  void Close() {
    std::error_code ec;
    socket_.close(ec);
  }

 private:
  size_t Read() {
    std::error_code ec;
    socket_.non_blocking(true, ec);
    size_t got = 0;
    char buf[4096];
    while (true) {
      size_t n = socket_.read_some(asio::buffer(buf), ec);
      if (ec || n == 0) break;
      got += n;
      decoder_.Append(std::string_view(buf, n));
    }
    while (true) {
      auto next = decoder_.Next();
      FT_FUZZ_CHECK(next.ok());  // the Connection's own frames are well-formed
      if (!next->has_value()) break;
      proto::ChannelFrame f;
      FT_FUZZ_CHECK(f.ParseFromArray((*next)->data(), static_cast<int>((*next)->size())));
      if (f.has_hello() && their_hello_.empty()) {
        their_hello_ = std::string(**next);
        their_nonce_ = f.hello().nonce();
      }
    }
    return got;
  }

  asio::io_context& io_;
  asio::ip::tcp::socket socket_;
  Role role_;
  Identity self_;
  FrameDecoder decoder_{4u << 20, "connection"};
  std::string my_hello_, my_nonce_, their_hello_, their_nonce_;
  bool sent_auth_ = false;
};

struct Observed {
  std::shared_ptr<Session> session;
  uint64_t next_log_offset = 0;
};

void Watch(const std::shared_ptr<Session>& s, Observed* seen) {
  seen->session = s;
  s->OnLog([seen](uint64_t offset, std::string_view data) {
    FT_FUZZ_CHECK(offset == seen->next_log_offset);
    seen->next_log_offset += data.size();
  });
  s->OnAck([](uint64_t, uint64_t) {});
  s->OnMessage([](std::string_view) {});
  s->OnClosed([](Status) {});
}

void RunScript(Script& script, Peer& peer, Observed& seen) {
  uint64_t log_offset = 0, sent_offset = 0;
  peer.Pump();
  while (!script.done()) {
    proto::ChannelFrame f;
    switch (script.Byte() % 10) {
      case 0:
        peer.Write(script.Bytes());
        break;
      case 1:
        peer.WriteFramePayload(script.Bytes());
        break;
      case 2:
        peer.Hello();
        break;
      case 3:
        peer.Auth();
        break;
      case 4:
        f.mutable_welcome();
        peer.WriteFrame(f);
        break;
      case 5: {
        std::string_view data = script.Bytes();
        f.mutable_log()->set_offset(log_offset);
        f.mutable_log()->set_data(std::string(data));
        log_offset += data.size();
        peer.WriteFrame(f);
        break;
      }
      case 6:
        f.mutable_ack()->set_received_offset(script.Byte());
        f.mutable_ack()->set_replayed_icount(script.Byte());
        peer.WriteFrame(f);
        break;
      case 7:
        f.mutable_heartbeat()->set_sent_mono_ns(script.Byte());
        f.mutable_heartbeat()->set_echo_mono_ns(script.Byte());
        peer.WriteFrame(f);
        break;
      case 8:
        f.mutable_message()->set_payload(std::string(script.Bytes()));
        peer.WriteFrame(f);
        break;
      case 9: {
        std::string data(script.Byte(), 'x');
        if (seen.session) {
          seen.session->SendLog(sent_offset, data);
          sent_offset += data.size();
        }
        break;
      }
    }
    peer.Pump();
    FT_FUZZ_CHECK(!seen.session || peer.sent_auth());
  }
  peer.Close();
  peer.Pump();
}

void AsAcceptor(Script& script, const std::string& vm) {
  asio::io_context io;
  Observed seen;
  auto listener = Listener::Create(
      io, "127.0.0.1", 0, TestOptions(),
      [vm](const Identity& peer) -> Result<Identity> {
        if (peer.vm != vm) return NotFound("no vm '" + peer.vm + "' here");
        return Side("hostA", vm);
      },
      [&seen](std::shared_ptr<Session> s) { Watch(s, &seen); });
  FT_FUZZ_CHECK(listener.ok());
  asio::ip::tcp::socket socket(io);
  std::error_code ec;
  socket.connect({asio::ip::make_address("127.0.0.1"), (*listener)->port()}, ec);
  FT_FUZZ_CHECK(!ec);
  {
    Peer peer(io, std::move(socket), Role::kConnector, Side("hostB", vm));
    RunScript(script, peer, seen);
  }
  if (seen.session) seen.session->Close();
  (*listener)->Close();
  io.restart();
  io.poll();
}

void AsConnector(Script& script, const std::string& vm) {
  asio::io_context io;
  Observed seen;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  Connect(io, "127.0.0.1", acceptor.local_endpoint().port(), Side("hostA", vm), TestOptions(),
          [&seen](Result<std::shared_ptr<Session>> s) {
            if (s.ok()) Watch(*s, &seen);
          });
  // The resolver answers from its own thread: wait for the connection to arrive.
  acceptor.non_blocking(true);
  std::optional<asio::ip::tcp::socket> socket;
  for (int i = 0; i < 1000 && !socket; ++i) {
    io.restart();
    io.run_one_for(5ms);
    std::error_code ec;
    asio::ip::tcp::socket s(io);
    acceptor.accept(s, ec);
    if (!ec) socket.emplace(std::move(s));
  }
  FT_FUZZ_CHECK(socket.has_value());
  {
    Peer peer(io, std::move(*socket), Role::kAcceptor, Side("hostB", vm));
    RunScript(script, peer, seen);
  }
  if (seen.session) seen.session->Close();
  io.restart();
  io.poll();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  Script script(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
  const std::string vm = (data[0] & 2) ? "" : "web1";  // "": peer control
  if (data[0] & 1) {
    AsConnector(script, vm);
  } else {
    AsAcceptor(script, vm);
  }
  return 0;
}
