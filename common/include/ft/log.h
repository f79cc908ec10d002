// One spdlog logger per component ("ftd", "qmp", "replay", "config", "channel", "arbiter",
// "ctl"). Lines about a VM carry the VM name (and, once FT runs, epoch and log offset).
#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

namespace ft {

// Returns the logger for a component, creating it on first use. All component loggers share
// one sink (stderr, which systemd sends to the journal) and one level.
std::shared_ptr<spdlog::logger> Logger(const std::string& component);

// Sets the level of every component logger ("trace", "debug", "info", "warn", "error").
// Returns false for an unknown level name.
bool SetLogLevel(const std::string& level);

}  // namespace ft
