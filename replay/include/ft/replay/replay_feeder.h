// The backup's side of lockstep: feeds a replaying QEMU the primary's log as it arrives and
// keeps it from ever reaching the end of what was received (design rule 4).
//
// Every complete event received goes into the replayer's FIFO (after the u32 version).
// A `replay-break` sits at (icount at the end of the last complete INSTRUCTION span) - 1:
// QEMU reads the next event as soon as a span's count reaches zero, so a break exactly at a
// span's end would let it read past the received log and block its main loop (QMP too).
// The break only moves forward; when the replayer stops at it, the next break is set and
// the replayer continued. Once END arrives the break is removed and replay runs out.
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

namespace ft::replay {

class QmpClient;

// Icounts count from the log's start (the primary counts the same way); a replayer that
// starts from a snapshot (re-protection) adds the snapshot's icount inside QEMU.
struct ReplayFeederStats {
  uint64_t received_bytes = 0;   // log bytes received (complete events or not)
  uint64_t fed_bytes = 0;        // written into the replayer's FIFO
  uint64_t received_icount = 0;  // icount at the end of the received log
  uint64_t break_icount = 0;     // current replay-break (0: none yet)
  uint64_t replayed_icount = 0;  // last icount query-replay reported
  uint64_t breaks_set = 0;
  uint64_t stops = 0;  // times the replayer waited at a break
  bool ended = false;  // END received and fed
  // Lag of the replayer behind the received log.
  uint64_t lag_instructions() const {
    return received_icount > replayed_icount ? received_icount - replayed_icount : 0;
  }
  // In guest time: one instruction is 2^shift ns of virtual time under -icount shift.
  double lag_seconds(int icount_shift) const {
    return static_cast<double>(lag_instructions()) * static_cast<double>(1u << icount_shift) * 1e-9;
  }
};

class ReplayFeeder : public std::enable_shared_from_this<ReplayFeeder> {
 public:
  static constexpr auto kBreakInterval = std::chrono::milliseconds(10);
  // How often the replay position is asked for between stops (a stop asks at once). Every
  // QMP command costs the replayer's core: on Debian's QEMU 7.2 one monitor poll round per
  // byte, where asking every 10 ms took 23% of a one-core host from the replaying vCPU; on
  // ftd's build (monitor-qmp-reads-more-than-one-byte.patch) ~30 us of monitor CPU each.
  // The position goes to the primary in acks every 20 ms; 50 ms more staleness holds the
  // primary slightly earlier, never later (docs/design.md, "Pacing").
  static constexpr auto kPositionInterval = std::chrono::milliseconds(50);

  // `fifo_fd`: the write side of the replayer's rrfile FIFO (ownership taken; opened
  // O_RDWR so it never blocks on a missing reader). Writes `rr_version` first.
  static Result<std::shared_ptr<ReplayFeeder>> Create(asio::io_context& io, std::string vm_name,
                                                      int fifo_fd, uint32_t rr_version);
  ~ReplayFeeder();

  // Bytes of the primary's log, any split. Malformed bytes are DataLoss and never fed.
  Status Append(std::string_view bytes);
  // True once a complete INSTRUCTION span exists: the replayer can be started (it reads the
  // version and the first event during start-up, before QMP answers).
  bool ready_to_start() const;
  // The replayer was started with -S and its QMP is connected: set the first break, `cont`.
  void Start(std::shared_ptr<QmpClient> qmp);
  // Called once on an error that ends replay (QMP failure, FIFO write error).
  void OnError(std::function<void(Status)> handler);

  // The replayer waits at the last break the received log allows: it has executed all it
  // can of what arrived (short of the final event's read-ahead, which GoLive takes care of).
  bool caught_up() const;
  // Go-live, once this backup has won the test-and-set: replay up to E, the icount at the
  // end of the last complete event received, and pause there for good. A break at E plus a
  // synthetic INSTRUCTION event after the log (count 0x7fffffff) lets QEMU read ahead at E
  // without reaching the end of its input (docs/design.md, "Go-live from any event
  // boundary"). `done` gets E once the replayer is paused at exactly E; an incomplete last
  // event is dropped. A point of no return: this replayer can never take real events again,
  // and Append refuses from now on.
  void GoLive(std::function<void(Result<uint64_t>)> done);

  const ReplayFeederStats& stats() const;

 private:
  struct Impl;
  explicit ReplayFeeder(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace ft::replay
