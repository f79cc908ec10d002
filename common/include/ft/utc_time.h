// Wall-clock times for people: what a claim record's unix_time_ms looks like in a note, a log
// line or `ftctl status`.
#pragma once

#include <cstdint>
#include <string>

namespace ft {

// "2026-12-06 05:13:46 UTC" for milliseconds since the Unix epoch.
std::string FormatUtcMs(int64_t unix_ms);

}  // namespace ft
