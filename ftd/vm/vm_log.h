// A VM's logger: every line a role writes about its VM says which VM, and where the pair
// stands when the role knows it: "vm 'web1' (epoch 3, log 1048576): PROTECTED: ...". The
// position comes from the role at the moment of the line (the epoch it runs in, the log
// offset it has recorded or received), so no call site writes a prefix by hand.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <spdlog/logger.h>

namespace ft::daemon {

// Where a VM's pair stands, for log lines: unknown parts are left out.
struct VmLogPosition {
  std::optional<uint64_t> epoch;
  std::optional<uint64_t> log_offset;  // record log bytes written (primary) or received
};

// "vm 'web1' (epoch 3, log 1048576): " and shorter forms for what is not known.
std::string VmLogPrefix(const std::string& vm, const VmLogPosition& at);

class VmLog {
 public:
  VmLog(std::shared_ptr<spdlog::logger> logger, std::string vm,
        std::function<VmLogPosition()> position = nullptr)
      : logger_(std::move(logger)), vm_(std::move(vm)), position_(std::move(position)) {}

  template <typename... Args>
  void debug(fmt::format_string<Args...> f, Args&&... args) const {
    Log(spdlog::level::debug, f, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void info(fmt::format_string<Args...> f, Args&&... args) const {
    Log(spdlog::level::info, f, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void warn(fmt::format_string<Args...> f, Args&&... args) const {
    Log(spdlog::level::warn, f, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void error(fmt::format_string<Args...> f, Args&&... args) const {
    Log(spdlog::level::err, f, std::forward<Args>(args)...);
  }

  const std::shared_ptr<spdlog::logger>& logger() const { return logger_; }

 private:
  template <typename... Args>
  void Log(spdlog::level::level_enum level, fmt::format_string<Args...> f, Args&&... args) const {
    if (!logger_->should_log(level)) return;
    VmLogPosition at = position_ ? position_() : VmLogPosition{};
    logger_->log(level, "{}{}", VmLogPrefix(vm_, at), fmt::format(f, std::forward<Args>(args)...));
  }

  std::shared_ptr<spdlog::logger> logger_;
  std::string vm_;
  std::function<VmLogPosition()> position_;
};

}  // namespace ft::daemon
