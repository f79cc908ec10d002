// Small statistics for tests and benchmarks.
#pragma once

#include <algorithm>
#include <cstdio>
#include <vector>

namespace ft::testing {

// The p-quantile (0..1) of `v` by rank; 0 for no samples.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// A benchmark's summary row: "  what   p50 X unit   p99 Y unit   max Z unit".
inline void PrintPercentiles(const char* what, const char* unit, const std::vector<double>& v) {
  if (v.empty()) return;
  std::printf("  %-34s p50 %8.1f %s   p99 %8.1f %s   max %8.1f %s\n", what, Percentile(v, 0.5),
              unit, Percentile(v, 0.99), unit, *std::max_element(v.begin(), v.end()), unit);
}

}  // namespace ft::testing
