#include "service_notifier.h"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <asio.hpp>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "ft/log.h"

namespace ft::daemon {
namespace {

using namespace std::chrono_literals;

// How often the status is recomputed; it is sent only when it changed.
constexpr auto kStatusCheckInterval = 1s;

std::string Plural(size_t n, const char* one, const char* many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

bool NotifySocketSet() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  return socket && *socket;
}

}  // namespace

std::string ServiceStatusLine(const std::vector<VmReport>& vms) {
  if (vms.empty()) return "no VMs";
  // Primary states, then backup states, then VMs without FT; any other state is counted
  // after them, in the order first seen.
  std::vector<std::pair<VmFtState, size_t>> by_state;
  for (VmFtState state :
       {VmFtState::kProtected, VmFtState::kWaitingForBackup, VmFtState::kUnprotected,
        VmFtState::kReplaying, VmFtState::kWaitingForPrimary, VmFtState::kPrimaryLost,
        VmFtState::kFinished, VmFtState::kFailed, VmFtState::kOff}) {
    by_state.emplace_back(state, 0);
  }
  size_t running = 0;
  for (const auto& vm : vms) {
    if (vm.state == VmState::kRunning) ++running;
    auto it = std::find_if(by_state.begin(), by_state.end(),
                           [&vm](const auto& s) { return s.first == vm.ft_state; });
    if (it == by_state.end()) it = by_state.insert(by_state.end(), {vm.ft_state, 0});
    ++it->second;
  }
  std::string line = fmt::format("{}, {} running:", Plural(vms.size(), "VM", "VMs"), running);
  const char* separator = " ";
  for (const auto& [state, count] : by_state) {
    if (count == 0) continue;
    line += fmt::format("{}{} {}", separator, count,
                        state == VmFtState::kOff ? "without FT" : VmFtStateName(state));
    separator = ", ";
  }
  return line;
}

struct ServiceNotifier::Impl : std::enable_shared_from_this<ServiceNotifier::Impl> {
  Impl(asio::io_context& io, std::function<std::string()> status_fn)
      : status(std::move(status_fn)),
        watchdog_timer(io),
        status_timer(io),
        enabled(NotifySocketSet()),
        log(Logger("ftd")) {}

  std::function<std::string()> status;
  asio::steady_timer watchdog_timer, status_timer;
  const bool enabled;
  std::shared_ptr<spdlog::logger> log;
  std::chrono::microseconds watchdog_interval{0};
  bool stopping = false, closed = false, warned = false;
  std::string last_status;

  std::string CurrentStatus() const {
    std::string s = status ? status() : "";
    return stopping ? "stopping: " + s : s;
  }

  void Send(const std::string& message) {
    int r = sd_notify(0, message.c_str());
    if (r < 0 && !warned) {
      warned = true;  // once: a gone socket would say so every second
      log->warn("systemd: cannot notify '{}': {}", message.substr(0, message.find('\n')),
                std::strerror(-r));
    }
  }

  void Ready() {
    if (!enabled || closed) return;
    uint64_t usec = 0;
    // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID, if set, is this process.
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
      watchdog_interval = std::chrono::microseconds(usec / 2);
    }
    last_status = CurrentStatus();
    Send("READY=1\nSTATUS=" + last_status + (watchdog_interval.count() ? "\nWATCHDOG=1" : ""));
    if (watchdog_interval.count()) {
      log->info("systemd: ready; watchdog ping every {} ms", watchdog_interval.count() / 1000);
      ArmWatchdog();
    } else {
      log->info("systemd: ready");
    }
    ArmStatus();
  }

  void Stopping() {
    if (!enabled || closed || stopping) return;
    stopping = true;
    last_status = CurrentStatus();
    Send("STOPPING=1\nSTATUS=" + last_status);
  }

  void Close() {
    closed = true;
    watchdog_timer.cancel();
    status_timer.cancel();
  }

  // On the io_context's thread: if the loop stops turning, the pings stop.
  void ArmWatchdog() {
    watchdog_timer.expires_after(watchdog_interval);
    std::weak_ptr<Impl> weak = shared_from_this();
    watchdog_timer.async_wait([weak](const std::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->closed) return;
      self->Send("WATCHDOG=1");
      self->ArmWatchdog();
    });
  }

  void ArmStatus() {
    status_timer.expires_after(kStatusCheckInterval);
    std::weak_ptr<Impl> weak = shared_from_this();
    status_timer.async_wait([weak](const std::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->closed) return;
      if (std::string now = self->CurrentStatus(); now != self->last_status) {
        self->last_status = now;
        self->Send("STATUS=" + now);
      }
      self->ArmStatus();
    });
  }
};

ServiceNotifier::ServiceNotifier(asio::io_context& io, std::function<std::string()> status)
    : impl_(std::make_shared<Impl>(io, std::move(status))) {}
ServiceNotifier::~ServiceNotifier() { impl_->Close(); }
void ServiceNotifier::Ready() { impl_->Ready(); }
void ServiceNotifier::Stopping() { impl_->Stopping(); }
void ServiceNotifier::Close() { impl_->Close(); }

}  // namespace ft::daemon
