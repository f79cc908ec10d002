// The ftd daemon: one io_context on one thread runs every VM runner, the signal handlers and
// (later) the logging channel and control socket. Handlers never block.
#pragma once

#include "ft/daemon/config.h"

namespace ft::daemon {

// Runs until SIGTERM/SIGINT, then stops every VM in order. Returns the process exit code.
int RunDaemon(const Config& config);

}  // namespace ft::daemon
