#include "service_notifier.h"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <asio.hpp>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "ft/log.h"
#include "repeating_wait.h"

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

struct ServiceNotifier::Impl {
  Impl(asio::io_context& io_context, std::function<std::string()> status_fn)
      : io(io_context),
        status(std::move(status_fn)),
        status_ticker(io_context, kStatusCheckInterval, [this] { SendStatusIfChanged(); }),
        enabled(NotifySocketSet()),
        log(Logger("ftd")) {}

  asio::io_context& io;
  std::function<std::string()> status;
  RepeatingTimer status_ticker;
  // Pings from the io_context's thread: if the loop stops turning, the pings stop.
  std::optional<RepeatingTimer> watchdog_ticker;  // only when systemd asks for pings
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
      watchdog_ticker.emplace(io, watchdog_interval, [this] { Send("WATCHDOG=1"); });
      watchdog_ticker->Start();
    } else {
      log->info("systemd: ready");
    }
    status_ticker.Start();
  }

  void Stopping() {
    if (!enabled || closed || stopping) return;
    stopping = true;
    last_status = CurrentStatus();
    Send("STOPPING=1\nSTATUS=" + last_status);
  }

  void Close() {
    closed = true;
    if (watchdog_ticker) watchdog_ticker->Stop();
    status_ticker.Stop();
  }

  void SendStatusIfChanged() {
    if (std::string now = CurrentStatus(); now != last_status) {
      last_status = now;
      Send("STATUS=" + now);
    }
  }
};

ServiceNotifier::ServiceNotifier(asio::io_context& io, std::function<std::string()> status)
    : impl_(std::make_shared<Impl>(io, std::move(status))) {}
ServiceNotifier::~ServiceNotifier() { impl_->Close(); }
void ServiceNotifier::Ready() { impl_->Ready(); }
void ServiceNotifier::Stopping() { impl_->Stopping(); }
void ServiceNotifier::Close() { impl_->Close(); }

}  // namespace ft::daemon
