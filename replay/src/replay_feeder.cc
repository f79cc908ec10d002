#include "ft/replay/replay_feeder.h"

#include <fcntl.h>
#include <unistd.h>

#include <asio.hpp>
#include <deque>

#include <fmt/format.h>

#include "ft/log.h"
#include "ft/replay/qmp_client.h"
#include "ft/replay/rr_log.h"

namespace ft::replay {
namespace {
constexpr auto kQmpTimeout = std::chrono::seconds(5);
constexpr int kPipeSize = 1 << 20;
constexpr auto kGoLiveTimeout = std::chrono::seconds(10);
constexpr auto kGoLivePoll = std::chrono::milliseconds(2);
// The largest count QEMU 7.2 takes as positive (larger ones turn negative inside it).
constexpr uint32_t kSyntheticSpan = 0x7fffffff;
}  // namespace

struct ReplayFeeder::Impl : std::enable_shared_from_this<ReplayFeeder::Impl> {
  Impl(asio::io_context& io, std::string name, int fd)
      : vm(std::move(name)), fifo(io, fd), timer(io), log(Logger("replay")) {}

  std::string vm;
  asio::posix::stream_descriptor fifo;
  asio::steady_timer timer;
  std::shared_ptr<spdlog::logger> log;
  std::shared_ptr<QmpClient> qmp;
  RrLogParser parser;
  std::deque<std::string> queue;  // bytes waiting for the FIFO
  bool writing = false;
  ReplayFeederStats stats;
  uint64_t target_break = 0;         // end of the last complete INSTRUCTION span - 1
  bool stopped_at_break = false;     // paused (STOP event) and not continued since
  bool stop_position_known = false;  // stop_position was queried after that STOP
  uint64_t stop_position = 0;
  // The replayer's icount when it starts: 0 from boot, the snapshot's icount when it starts
  // from one (re-protection). The log's icounts count from the log's start; QEMU's
  // replay-break and query-replay use its own.
  uint64_t icount_base = 0;
  uint64_t ToQemu(uint64_t log_icount) const { return log_icount + icount_base; }
  uint64_t FromQemu(uint64_t qemu_icount) const {
    return qemu_icount > icount_base ? qemu_icount - icount_base : 0;
  }
  bool command_in_flight = false;
  bool started = false;
  bool failed = false;
  std::function<void(Status)> on_error;

  void Fail(Status s) {
    if (failed) return;
    failed = true;
    timer.cancel();
    log->error("vm '{}': replay feeder: {}", vm, s.ToString());
    if (on_error) on_error(s);
  }

  Status Append(std::string_view bytes) {
    if (failed) return Aborted("replay feeder has failed");
    if (going_live) return FailedPrecondition("the replayer is going live; no more log");
    std::vector<RrEvent> events;
    Status s = parser.Feed(bytes, &events);
    stats.received_bytes = parser.received();
    if (!s.ok()) {
      Fail(s);
      return s;
    }
    // Only complete events go to the replayer: a partial one could be all it reads next.
    // Bytes that complete no event yet wait in `unfed` for the ones that do.
    unfed.append(bytes);
    if (events.empty()) return Status::Ok();
    size_t n = static_cast<size_t>(events.back().offset + events.back().size - fed_end);
    std::string chunk = unfed.substr(0, n);
    unfed.erase(0, n);
    fed_end += n;
    for (const auto& e : events) {
      if (e.kind == rr::kInstruction && e.icount_after > 0) target_break = e.icount_after - 1;
      if (e.kind == rr::kEnd) stats.ended = true;
    }
    stats.received_icount = parser.icount();
    Enqueue(std::move(chunk));
    if (stats.ended && started) Finish();
    return Status::Ok();
  }

  // Received bytes from stream offset `fed_end` on that complete no event yet.
  std::string unfed;
  uint64_t fed_end = 0;

  void Enqueue(std::string bytes) {
    if (bytes.empty()) return;
    queue.push_back(std::move(bytes));
    WriteNext();
  }

  void WriteNext() {
    if (writing || queue.empty() || failed) return;
    writing = true;
    auto self = shared_from_this();
    asio::async_write(
        fifo, asio::buffer(queue.front()), [self](const std::error_code& ec, size_t n) {
          self->writing = false;
          if (ec) {
            self->Fail(
                Unavailable(fmt::format("writing the replayer's log FIFO: {}", ec.message())));
            return;
          }
          self->stats.fed_bytes += n;
          self->queue.pop_front();
          self->WriteNext();
        });
  }

  void Start(std::shared_ptr<QmpClient> client) {
    qmp = std::move(client);
    started = true;
    std::weak_ptr<Impl> weak = shared_from_this();
    qmp->OnEvent([weak](const std::string& name, const Json&) {
      auto self = weak.lock();
      if (!self || name != "STOP") return;
      self->OnStopped();
    });
    if (stats.ended) return Finish();
    // The replayer starts paused (-S): where it starts, the first break, then cont.
    command_in_flight = true;
    qmp->Execute("query-replay", Json::object(), kQmpTimeout,
                 [self = shared_from_this()](Result<Json> r) {
                   self->command_in_flight = false;
                   if (!r.ok()) return self->Fail(r.status().WithContext("query-replay"));
                   self->icount_base = r->value("icount", uint64_t{0});
                   if (self->icount_base) {
                     self->log->info("vm '{}': the replayer starts from a snapshot at icount {}",
                                     self->vm, self->icount_base);
                   }
                   self->SetBreak([self] { self->Cont(); });
                   self->Tick();
                 });
  }

  std::chrono::steady_clock::time_point last_position_query{};
  void Tick() {
    timer.expires_after(kBreakInterval);
    timer.async_wait([self = shared_from_this()](const std::error_code& ec) {
      if (ec || self->failed || self->going_live) return;
      self->Advance();
      auto now = std::chrono::steady_clock::now();
      if (now - self->last_position_query >= kPositionInterval) {
        self->last_position_query = now;
        self->QueryPosition();
      }
      self->Tick();
    });
  }

  // The replayer paused. Usually at the current break, but a break replaced just as the
  // replayer reached it stops it at the old one: ask where it is before deciding.
  void OnStopped() {
    stopped_at_break = true;
    stop_position_known = false;
    ++stats.stops;
    qmp->Execute("query-replay", Json::object(), kQmpTimeout,
                 [self = shared_from_this()](Result<Json> r) {
                   if (!r.ok() || !self->stopped_at_break) return;
                   self->stop_position = self->FromQemu(r->value("icount", uint64_t{0}));
                   self->stats.replayed_icount = self->stop_position;
                   self->stop_position_known = true;
                   if (self->going_live) return self->GoLiveStep();
                   self->Advance();
                 });
  }

  bool CaughtUp() const {
    return started && !going_live && stopped_at_break && stop_position_known &&
           stop_position >= stats.break_icount && target_break <= stats.break_icount;
  }

  // ---- go-live: to E and no further (see the header)
  bool going_live = false;
  uint64_t live_icount = 0;  // E
  bool final_break_set = false;
  std::function<void(Result<uint64_t>)> on_live;
  std::chrono::steady_clock::time_point go_live_deadline;

  void GoLive(std::function<void(Result<uint64_t>)> done) {
    if (failed || !started || going_live || stats.ended) {
      return done(FailedPrecondition(fmt::format("vm '{}': the replayer cannot go live ({})", vm,
                                                 failed       ? "its feeder failed"
                                                 : !started   ? "it never started"
                                                 : going_live ? "it already is"
                                                              : "the log ended")));
    }
    going_live = true;
    on_live = std::move(done);
    live_icount = parser.icount();
    go_live_deadline = std::chrono::steady_clock::now() + kGoLiveTimeout;
    timer.cancel();
    unfed.clear();  // an incomplete last event: the primary died while writing it
    std::string tail(5, '\0');
    tail[0] = static_cast<char>(rr::kInstruction);
    for (int i = 0; i < 4; ++i)
      tail[1 + i] = static_cast<char>((kSyntheticSpan >> (24 - 8 * i)) & 0xff);
    Enqueue(std::move(tail));
    log->info("vm '{}': going live: replaying to icount {} (end of the received log), {} behind",
              vm, live_icount, live_icount - std::min(live_icount, stats.replayed_icount));
    GoLiveStep();
  }

  // One step of go-live; runs again on every STOP answer and every poll until paused at E.
  void GoLiveStep() {
    if (!going_live || !on_live) return;
    if (failed)
      return FinishGoLive(Aborted(fmt::format("vm '{}': replay failed while going live", vm)));
    if (std::chrono::steady_clock::now() > go_live_deadline) {
      return FinishGoLive(Timeout(fmt::format(
          "vm '{}': the replayer did not reach icount {} within {} s (it is at {})", vm,
          live_icount, std::chrono::duration_cast<std::chrono::seconds>(kGoLiveTimeout).count(),
          stats.replayed_icount)));
    }
    if (command_in_flight) return PollGoLive();
    if (!final_break_set) {
      if (live_icount <= stats.break_icount) {
        // Nothing past the current break arrived: the replayer is at or before it.
        final_break_set = true;
      } else {
        command_in_flight = true;
        uint64_t at = live_icount;
        qmp->Execute("replay-break", Json{{"icount", ToQemu(at)}}, kQmpTimeout,
                     [self = shared_from_this(), at](Result<Json> r) {
                       self->command_in_flight = false;
                       if (!r.ok()) {
                         return self->FinishGoLive(
                             r.status().WithContext(fmt::format("replay-break {}", at)));
                       }
                       self->stats.break_icount = at;
                       ++self->stats.breaks_set;
                       self->final_break_set = true;
                       self->GoLiveStep();
                     });
        return;
      }
    }
    if (stopped_at_break && stop_position_known) {
      if (stop_position == live_icount) {
        return FinishGoLive(live_icount);
      }
      if (stop_position < live_icount) {
        Cont();  // paused at an earlier break: on to E
        return PollGoLive();
      }
      return FinishGoLive(Internal(fmt::format(
          "vm '{}': the replayer stopped at icount {}, past the end of the received log ({})", vm,
          stop_position, live_icount)));
    }
    PollGoLive();  // running towards E, or the STOP's position is being asked
  }

  void PollGoLive() {
    timer.expires_after(kGoLivePoll);
    timer.async_wait([self = shared_from_this()](const std::error_code& ec) {
      if (!ec) self->GoLiveStep();
    });
  }

  void FinishGoLive(Result<uint64_t> result) {
    if (!on_live) return;
    auto done = std::move(on_live);
    on_live = nullptr;
    timer.cancel();
    done(std::move(result));
  }

  // Move the break forward if the received log allows; continue a replayer that is paused
  // short of the break (after the break moved, or at a stale one).
  void Advance() {
    if (command_in_flight || failed || !started) return;
    if (going_live) return GoLiveStep();
    if (stats.ended) return Finish();
    if (target_break > stats.break_icount) {
      return SetBreak([self = shared_from_this()] { self->Advance(); });
    }
    if (stopped_at_break && stop_position_known && stop_position < stats.break_icount) Cont();
  }

  void SetBreak(std::function<void()> then) {
    uint64_t at = target_break;
    if (at == 0 || at <= stats.break_icount) return then();
    command_in_flight = true;
    qmp->Execute("replay-break", Json{{"icount", ToQemu(at)}}, kQmpTimeout,
                 [self = shared_from_this(), at, then](Result<Json> r) {
                   self->command_in_flight = false;
                   if (!r.ok()) {
                     return self->Fail(r.status().WithContext(fmt::format("replay-break {}", at)));
                   }
                   self->stats.break_icount = at;
                   ++self->stats.breaks_set;
                   then();
                 });
  }

  void Cont() {
    stopped_at_break = false;
    stop_position_known = false;
    command_in_flight = true;
    qmp->Execute("cont", Json::object(), kQmpTimeout, [self = shared_from_this()](Result<Json> r) {
      self->command_in_flight = false;
      if (!r.ok()) self->Fail(r.status().WithContext("cont"));
    });
  }

  void QueryPosition() {
    qmp->Execute("query-replay", Json::object(), kQmpTimeout,
                 [self = shared_from_this()](Result<Json> r) {
                   if (r.ok()) {
                     self->stats.replayed_icount = self->FromQemu(r->value("icount", uint64_t{0}));
                   }
                 });
  }

  // END received: nothing can be missing any more; let replay run out.
  bool finishing = false;
  void Finish() {
    if (finishing || command_in_flight) return;
    finishing = true;
    timer.cancel();
    qmp->Execute("replay-delete-break", Json::object(), kQmpTimeout,
                 [self = shared_from_this()](Result<Json>) { self->Cont(); });
  }
};

Result<std::shared_ptr<ReplayFeeder>> ReplayFeeder::Create(asio::io_context& io,
                                                           std::string vm_name, int fifo_fd,
                                                           uint32_t rr_version) {
  fcntl(fifo_fd, F_SETPIPE_SZ, kPipeSize);  // best effort: fewer wake-ups for the replayer
  int flags = fcntl(fifo_fd, F_GETFL);
  fcntl(fifo_fd, F_SETFL, flags | O_NONBLOCK);
  auto impl = std::make_shared<Impl>(io, std::move(vm_name), fifo_fd);
  impl->Enqueue(EncodeVersion(rr_version));
  return std::shared_ptr<ReplayFeeder>(new ReplayFeeder(impl));
}

ReplayFeeder::~ReplayFeeder() {
  // A replayer that stopped reading leaves a write pending on the FIFO: cancel it, or the
  // daemon's io_context never runs out of work.
  impl_->failed = true;
  impl_->timer.cancel();
  std::error_code ec;
  impl_->fifo.close(ec);
}

Status ReplayFeeder::Append(std::string_view bytes) { return impl_->Append(bytes); }
bool ReplayFeeder::ready_to_start() const { return impl_->target_break > 0 || impl_->stats.ended; }
void ReplayFeeder::Start(std::shared_ptr<QmpClient> qmp) { impl_->Start(std::move(qmp)); }
void ReplayFeeder::OnError(std::function<void(Status)> handler) {
  impl_->on_error = std::move(handler);
}
const ReplayFeederStats& ReplayFeeder::stats() const { return impl_->stats; }
bool ReplayFeeder::caught_up() const { return impl_->CaughtUp(); }
void ReplayFeeder::GoLive(std::function<void(Result<uint64_t>)> done) {
  impl_->GoLive(std::move(done));
}

}  // namespace ft::replay
