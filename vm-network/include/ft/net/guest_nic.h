// A VM's NIC as ftd serves it: QEMU's stream netdev connects to a unix socket ftd listens on
// (before QEMU starts: QEMU 7.2 does not reconnect); inbound frames from the host's TAP go
// into the guest over that socket (QEMU's filter-replay records them in the log); outbound
// frames go through the output gate to the TAP. All on the daemon's io_context thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ft/net/output_gate.h"
#include "ft/replay/rr_log.h"
#include "ft/status.h"

namespace asio {
class io_context;
}

namespace ft::net {

// What happens to the frames the guest sends.
// The values are control.proto's Outbound (ftd sends them as they are).
enum class Outbound {
  kGated = 1,  // primary: held until the backup acked the log that covers them
  kOpen,       // no FT, or an unprotected primary: straight out
  kDrop,       // backup before go-live: its replayed guest's frames never leave
};
const char* OutboundName(Outbound mode);

struct GuestNicOptions {
  std::string vm;
  std::string socket_path;  // QEMU's `-netdev stream,...,addr.path=`
  std::string bridge;       // host bridge for the TAP; "" = no TAP (nothing in or out)
  Outbound outbound = Outbound::kOpen;
  // kGated: log bytes the recording QEMU has written so far (the shim's `produced`). An
  // error drops the frame: without it the gate cannot know which log covers the frame.
  std::function<Result<uint64_t>()> log_position;
  // Optional: one line per released frame, "seq fnv64 produced covering_end acked held_ns
  // released_ns open" (CLOCK_MONOTONIC), for tests and benchmarks (docs/benchmarks.md).
  std::string trace_path;
  GateLimits gate_limits;
  // The guest's MAC (for Announce and for learning its IPv4 address from what it sends), and
  // that address if already known (e.g. from the backup's NIC before going live).
  std::string mac;
  std::optional<uint32_t> guest_ipv4;
};

struct NicStats {
  std::string tap;  // "" when none
  bool guest_connected = false;
  Outbound outbound = Outbound::kOpen;
  uint64_t frames_out = 0, bytes_out = 0;  // guest -> host, sent on the TAP
  uint64_t frames_in = 0, bytes_in = 0;    // host -> guest
  // Dropped, by reason; never a crash.
  uint64_t dropped_malformed = 0;   // from the guest: shorter than a header or oversized
  uint64_t dropped_host_runts = 0;  // from the TAP: shorter than an Ethernet header
  uint64_t dropped_no_guest = 0;    // from the TAP while QEMU is not connected
  uint64_t dropped_queue_full = 0;  // either direction's write queue was full
  uint64_t dropped_no_log_position = 0;
  uint64_t dropped_backup = 0;  // kDrop
  uint64_t dropped_tap_errors = 0;
  std::string guest_ipv4;      // as learnt from the guest's frames; "" until seen
  uint64_t announcements = 0;  // frames sent by Announce
  GateStats gate;              // its dropped_full: frames dropped because the gate was full
};

class GuestNic {
 public:
  // Listens on `socket_path` (0600; a stale socket file is replaced) and, with a bridge,
  // creates the TAP, attached and up. Errors name the socket, TAP or bridge.
  static Result<std::shared_ptr<GuestNic>> Create(asio::io_context& io, GuestNicOptions options);
  ~GuestNic();
  GuestNic(const GuestNic&) = delete;
  GuestNic& operator=(const GuestNic&) = delete;

  // Gate inputs (kGated): complete log events the tap parsed, and the backup's acks.
  void OnLogEvents(const std::vector<replay::RrEvent>& events);
  void OnAcked(uint64_t acked_log_bytes);
  // The primary lost its backup and runs unprotected: held frames go out in order, and so
  // does everything after.
  void OpenGate();
  // Tells the switch the VM's MAC is now behind this host's TAP (after go-live): a gratuitous
  // ARP for the guest's address, or a RARP if none is known, sent now and twice more over
  // the next 300 ms, as QEMU announces a migrated VM.
  void Announce();
  std::optional<uint32_t> guest_ipv4() const;
  // Stops listening and forwarding; removes the socket file; the TAP disappears.
  void Close();
  NicStats stats() const;

 private:
  struct Impl;
  explicit GuestNic(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace ft::net
