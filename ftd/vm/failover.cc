#include "failover.h"

#include <asio.hpp>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "ft/log.h"
#include "ft/shared_disk/shared_directory.h"
#include "roles.h"
#include "vm_log.h"

namespace ft::daemon {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kTick = std::chrono::milliseconds(50);

int64_t MonotonicNs(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

// Where a claim thread delivers its answer. Closed when the VM's failover goes away: a thread
// stuck on dead storage may finish after ftd's event loop is gone, and must then not touch it.
struct ClaimReturn {
  std::mutex mu;
  asio::io_context* io = nullptr;  // null once closed
};

struct Failover::Impl : arbiter::Actions, std::enable_shared_from_this<Failover::Impl> {
  Impl(asio::io_context& io_context, const NodeConfig& node_config, const std::string& vm_name,
       arbiter::Role role, uint64_t epoch, FailoverHooks failover_hooks)
      : io(io_context),
        node(node_config),
        vm(vm_name),
        hooks(std::move(failover_hooks)),
        arbiter({vm, node.name, !node.shared_storage.empty()}, role, epoch, *this),
        timer(io_context),
        log(Logger("failover")),
        vlog(log, vm, [this] {
          VmLogPosition at;
          if (arbiter.epoch()) at.epoch = arbiter.epoch();
          return at;
        }) {
    if (!node.shared_storage.empty()) {
      store = std::make_shared<shared_disk::SharedDirectoryTestAndSet>(node.shared_storage);
    }
    claim_return->io = &io_context;
  }
  ~Impl() override {
    std::lock_guard lock(claim_return->mu);
    claim_return->io = nullptr;
  }

  asio::io_context& io;
  NodeConfig node;
  std::string vm;
  FailoverHooks hooks;
  std::shared_ptr<shared_disk::TestAndSet> store;  // null: failover off; shared with threads
  std::shared_ptr<ClaimReturn> claim_return = std::make_shared<ClaimReturn>();
  arbiter::VmArbiter arbiter;
  asio::steady_timer timer;
  std::shared_ptr<spdlog::logger> log;
  VmLog vlog;                                   // "vm 'web1' (epoch 3): " on every line
  const TimeSource& time = SteadyTimeSource();  // what the arbiter is told the time is
  bool ticking = false;
  std::string last_claim_error, last_read_error;
  std::optional<Clock::time_point> caught_up_at, replay_ended_at, snapshot_saved_at;

  // Runs `work` (which touches only the store) on its own thread and posts its result to
  // `done` on the event loop, unless this VM's authority is gone by then. One at a time per
  // kind (the arbiter waits for each answer); a thread stuck on dead storage never blocks a
  // stop nor outlives the event loop it answers to.
  template <typename T>
  void OffLoop(std::function<T(shared_disk::TestAndSet&)> work, void (Impl::*done)(const T&)) {
    std::weak_ptr<Impl> weak = weak_from_this();
    std::thread([weak, claim_store = store, back = claim_return, work = std::move(work), done] {
      T result = work(*claim_store);
      std::lock_guard lock(back->mu);
      if (!back->io) return;
      asio::post(*back->io, [weak, done, result = std::move(result)] {
        if (auto self = weak.lock()) ((*self).*done)(result);
      });
    }).detach();
    StartTicking();
  }

  // ---- arbiter::Actions
  void ReadStore() override {
    std::string name = vm;
    OffLoop<Result<arbiter::StoreView>>(
        [name](shared_disk::TestAndSet& s) { return arbiter::ReadStoreView(s, name); },
        &Impl::OnStoreRead);
  }

  void OnStoreRead(const Result<arbiter::StoreView>& view) {
    if (!view.ok()) {
      if (view.status().ToString() != last_read_error) {
        last_read_error = view.status().ToString();
        vlog.error("cannot read the claim store '{}': {}", node.shared_storage, last_read_error);
      }
    } else {
      last_read_error.clear();
    }
    arbiter.OnStoreRead(view, time.Now());
  }

  void Claim(const shared_disk::ClaimRequest& request) override {
    vlog.info("claiming epoch {} on '{}' ({})", request.epoch, node.shared_storage, request.reason);
    OffLoop<Result<shared_disk::ClaimOutcome>>(
        [request](shared_disk::TestAndSet& s) { return s.Claim(request); }, &Impl::OnClaimed);
  }

  Status RecordEpoch(uint64_t epoch) override {
    Status s = SaveEpoch(node, vm, epoch);
    if (!s.ok()) vlog.error("cannot record epoch {}: {}", epoch, s.ToString());
    return s;
  }
  void StartCopy(uint64_t epoch) override {
    if (hooks.start_copy) hooks.start_copy(epoch);
  }
  void OpenGate() override {
    if (hooks.open_gate) hooks.open_gate();
  }
  void GoLive(uint64_t new_epoch) override {
    if (hooks.go_live) hooks.go_live(new_epoch);
  }
  void Halt(const std::string& why) override {
    vlog.error("HALTING this copy: {}", why);
    if (hooks.halt) hooks.halt(why);
  }

  void OnClaimed(const Result<shared_disk::ClaimOutcome>& result) {
    if (result.ok() && result->won()) {
      vlog.info("WON epoch {} on '{}'", result->record.epoch, node.shared_storage);
    } else if (result.ok()) {
      vlog.warn("lost epoch {} to '{}' ({})", result->record.epoch, result->record.winner,
                result->record.reason);
    } else if (result.status().ToString() != last_claim_error) {
      last_claim_error = result.status().ToString();
      vlog.error("claim not decided, not going live until it is: {}", last_claim_error);
    }
    arbiter.OnClaimResult(result, time.Now());
  }

  void StartTicking() {
    if (ticking) return;
    ticking = true;
    Tick();
  }

  void Tick() {
    timer.expires_after(kTick);
    timer.async_wait([weak = weak_from_this()](const std::error_code& ec) {
      auto self = weak.lock();
      if (!self || ec) return;
      self->arbiter.OnTick(self->time.Now());
      auto state = self->arbiter.state();
      if (state == arbiter::FtState::kArbitrating || state == arbiter::FtState::kCheckingStore) {
        self->Tick();
      } else {
        self->ticking = false;
      }
    });
  }
};

std::string DescribeFailover(const NodeConfig& node) {
  if (node.shared_storage.empty()) return "off (no shared_storage)";
  return fmt::format("through '{}'", node.shared_storage);
}

std::shared_ptr<Failover> Failover::Create(asio::io_context& io, const NodeConfig& node,
                                           const std::string& vm, arbiter::Role role,
                                           uint64_t epoch, FailoverHooks hooks) {
  auto impl = std::make_shared<Impl>(io, node, vm, role, epoch, std::move(hooks));
  return std::shared_ptr<Failover>(new Failover(std::move(impl)));
}

Failover::~Failover() { impl_->timer.cancel(); }

bool Failover::on() const { return impl_->store != nullptr; }
void Failover::Start() { impl_->arbiter.Start(impl_->time.Now()); }
void Failover::CheckStoreAgain() { impl_->arbiter.CheckStoreAgain(impl_->time.Now()); }
void Failover::PeerConnected() { impl_->arbiter.OnPeerConnected(impl_->time.Now()); }
void Failover::PeerLost(const std::string& why) {
  impl_->arbiter.OnPeerLost(why, impl_->time.Now());
}
void Failover::CaughtUp() {
  if (!impl_->caught_up_at) impl_->caught_up_at = impl_->time.Now();
  impl_->arbiter.OnCaughtUp(impl_->time.Now());
}
void Failover::GiveUpWaiting(const std::string& why) {
  impl_->arbiter.OnGiveUpWaiting(why, impl_->time.Now());
}
Status Failover::TurnFtOff(const std::string& why) {
  return impl_->arbiter.OnTurnFtOff(why, impl_->time.Now());
}
void Failover::Stopping() { impl_->arbiter.OnStop(impl_->time.Now()); }
void Failover::CopyEnded(const std::string& why) {
  impl_->arbiter.OnCopyEnded(why, impl_->time.Now());
}
void Failover::GoLiveDone(const Status& status) {
  impl_->arbiter.OnGoLiveDone(status, impl_->time.Now());
}
void Failover::MarkReplayEnded() { impl_->replay_ended_at = impl_->time.Now(); }
void Failover::MarkSnapshotSaved() { impl_->snapshot_saved_at = impl_->time.Now(); }

const arbiter::VmArbiter& Failover::arbiter() const { return impl_->arbiter; }
arbiter::FtState Failover::state() const { return impl_->arbiter.state(); }
uint64_t Failover::epoch() const { return impl_->arbiter.epoch(); }
const std::string& Failover::note() const { return impl_->arbiter.note(); }

void Failover::FillReport(VmReport& r) const {
  if (!on()) return;  // `ftctl status` says failover is off
  const auto& a = impl_->arbiter;
  FailoverReport f;
  f.state = ReportedFtState(a.state());
  f.shared_storage = impl_->node.shared_storage;
  f.claims_sent = a.claims_sent();
  auto ns = [](const std::optional<Clock::time_point>& t) { return t ? MonotonicNs(*t) : 0; };
  f.peer_lost_ns = ns(a.peer_lost_at);
  f.caught_up_ns = ns(impl_->caught_up_at);
  f.claim_won_ns = ns(a.claim_won_at);
  f.replay_ended_ns = ns(impl_->replay_ended_at);
  f.snapshot_saved_ns = ns(impl_->snapshot_saved_at);
  f.live_ns = ns(a.live_at);
  f.store_id = a.store_id();
  if (const auto& newest = a.newest_claim()) {
    f.newest_epoch = newest->epoch;
    f.newest_winner = newest->winner;
    f.newest_reason = newest->reason;
    f.newest_unix_ms = newest->unix_time_ms;
  }
  r.failover = f;
}

}  // namespace ft::daemon
