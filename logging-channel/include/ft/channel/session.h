// The logging channel between the two ftds of a protected VM (design rule 1): one
// authenticated TCP connection per VM carrying the primary's record log to the backup, the
// backup's acks back, and heartbeats both ways. Frame format and handshake:
// docs/formats/logging-channel.md.
//
// Asio stays out of this header: callers hold an asio::io_context and pass it by reference.
// Everything runs on that io_context's single thread; callbacks are invoked on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "ft/status.h"

namespace asio {
class io_context;
}

namespace ft::channel {

// What a session is for: one VM's log, or the two ftds' own requests (enable, disable,
// planned failover, drills: ftd/daemon/peer_link.h), which concern no one VM's log. The
// values are channel.proto's Service.
enum class Service { kVmLog = 1, kPeerControl = 2 };

// What each side states about itself in the handshake. Both sides of a VM must agree on
// vm, config_digest, rr_version, replica_digest, epoch, failover and store_id, or the
// connection is refused with a message naming the field and both values (CompareIdentities).
//
// failover and store_id keep the pair on one arbiter: two hosts that decide failovers on
// different claim stores, or only one of them on any, could both go live. `failover` is
// compared on every session, peer control included (it comes from the node config alone).
// `store_id` is compared when both sides have failover on, except on peer-control sessions
// (Service::kPeerControl), which state no store: there a store read would be the daemon's, not a
// VM's, and `ftctl enable` must not wait for storage. On a VM's session an empty store_id
// with failover on means that side has not read its store: it differs from any real id.
struct Identity {
  std::string node;           // this host's node name (for logs; may differ)
  std::string vm;             // VM name; "" on peer control
  std::string config_digest;  // hex digest of the VM's replicated configuration
  uint32_t rr_version = 0;    // REPLAY_VERSION of this host's QEMU
  uint64_t epoch = 0;         // FT epoch of the VM pair
  // sha256 over the VM's disk images as they were when this side started ("" without
  // disks): replay from the start needs the backup's replicas equal to the primary's images.
  std::string replica_digest;
  // This host decides failovers: its [node] has a shared_storage (a claim store).
  bool failover = false;
  // The claim store's id (shared_disk::TestAndSet::StoreId) as this host read it; "" when
  // failover is off, and on peer-control sessions.
  std::string store_id;
  Service service = Service::kVmLog;
};

struct Options {
  std::string key;  // shared secret from both hosts' config; empty = refuse to run
  std::chrono::milliseconds heartbeat_interval{100};
  // No frame at all from the peer for this long: the session closes with kTimeout.
  std::chrono::milliseconds heartbeat_timeout{1000};
  // Handshake must complete within this (connect + hello + auth + welcome).
  std::chrono::milliseconds handshake_timeout{3000};
  uint32_t max_frame_bytes = 4u << 20;  // larger frames are a protocol error

  // Before the peer has authenticated, anybody may be at the other end: it gets little
  // (docs/formats/logging-channel.md, "Before authentication").
  // Frame limit until the handshake is done; its messages take a few hundred bytes.
  uint32_t handshake_max_frame_bytes = 4096;
  // A listener runs at most this many handshakes at once, and this many from one source
  // address; a connection over the cap is closed at once (or evicts one, see HandshakeSlots).
  size_t max_handshakes = 64;
  size_t max_handshakes_per_address = 8;
  // A listener warns about connections dropped before authenticating at most once per this
  // interval (the first at once, then a summary), not once per connection of a flood.
  std::chrono::milliseconds dropped_peer_log_interval{10000};
};

struct SessionStats {
  uint64_t frames_sent = 0, frames_received = 0;
  uint64_t bytes_sent = 0, bytes_received = 0;  // on the wire, headers included
  uint64_t log_bytes_sent = 0, log_bytes_received = 0;
  uint64_t heartbeats_received = 0;
  size_t queued_bytes = 0;  // accepted by Send* but not yet written to the socket
  // Round trip of the last heartbeat the peer echoed, microseconds (0: none yet).
  uint64_t last_rtt_us = 0;
};

// An authenticated connection for one VM. Created by Connect() or a Listener.
class Session : public std::enable_shared_from_this<Session> {
 public:
  virtual ~Session() = default;

  // Primary -> backup: `data` is the record log from byte `offset` of the stream. Chunks
  // must be sent contiguous: the receiver rejects (closes with kProtocol) any chunk whose
  // offset is not where the previous one ended.
  virtual void SendLog(uint64_t offset, std::string_view data) = 0;
  // Backup -> primary: every log byte before `received_offset` is received and checked;
  // `replayed_icount` is the replayer's position (for lag and pacing).
  virtual void SendAck(uint64_t received_offset, uint64_t replayed_icount) = 0;

  // Called for every in-order, CRC-checked log chunk.
  virtual void OnLog(std::function<void(uint64_t offset, std::string_view data)> cb) = 0;
  virtual void OnAck(
      std::function<void(uint64_t received_offset, uint64_t replayed_icount)> cb) = 0;
  // Called once when the session ends for any reason but Close(): the peer closed (kAborted),
  // heartbeat timeout (kTimeout), corrupt/out-of-order/oversized frame (kDataLoss/kProtocol),
  // socket error (kUnavailable). No callback runs after it.
  virtual void OnClosed(std::function<void(Status)> cb) = 0;
  // Closes the socket; no callbacks after this returns.
  virtual void Close() = 0;

  // Peer control (Service::kPeerControl): opaque messages each way.
  virtual void SendMessage(std::string_view payload) = 0;
  virtual void OnMessage(std::function<void(std::string_view payload)> cb) = 0;

  // What a host that died looks like to the peer: nothing more is sent (no heartbeats, no
  // log) and nothing read is acted on, but the socket stays open, so the peer finds out by
  // its heartbeat timeout rather than by a closed connection. Failover drills use it.
  // No callbacks run after it; Close() still closes the socket.
  virtual void GoSilent() = 0;

  virtual const Identity& peer() const = 0;
  virtual const SessionStats& stats() const = 0;
};

using SessionHandler = std::function<void(Result<std::shared_ptr<Session>>)>;

// Connects to host:port, runs the handshake as the connecting side with `self`. The handler
// gets the session once the peer accepted us and we accepted it, or the reason it failed
// (kUnavailable: cannot connect; kPermissionDenied: authentication failed either way;
// kFailedPrecondition: peer refused or we refused the peer's identity, message says which
// field; kTimeout).
void Connect(asio::io_context& io, const std::string& host, uint16_t port, Identity self,
             Options options, SessionHandler handler);

// Accepts connections and runs the handshake as the accepting side. For each peer that
// authenticates, `expect(peer)` returns this host's identity for the service and VM the peer
// stated (or NotFound / FailedPrecondition to refuse, e.g. unknown VM or not a backup here);
// the session is
// handed to `on_session` only if identities match. Refused and unauthenticated peers are
// logged (with their address) and closed; they never reach `on_session`.
class Listener {
 public:
  using ExpectFn = std::function<Result<Identity>(const Identity& peer)>;
  static Result<std::unique_ptr<Listener>> Create(
      asio::io_context& io, const std::string& host, uint16_t port, Options options,
      ExpectFn expect, std::function<void(std::shared_ptr<Session>)> on_session);
  virtual ~Listener() = default;
  virtual uint16_t port() const = 0;  // the bound port (useful with port 0)
  // Stops accepting and drops handshakes in progress; sessions already handed out live on.
  // Destroying the listener does the same.
  virtual void Close() = 0;
  // Optional: told about every peer that was refused or failed the handshake, after it was
  // logged: its address and why (kPermissionDenied: wrong key; kFailedPrecondition: identity
  // or version; kProtocol, kTimeout, kUnavailable: it misbehaved or went away).
  using RefusedFn = std::function<void(const std::string& peer_address, const Status& why)>;
  virtual void OnRefused(RefusedFn cb) {}
};

}  // namespace ft::channel
