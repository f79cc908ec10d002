// Small statistics for tests and benchmarks.
#pragma once

#include <algorithm>
#include <vector>

namespace ft::testing {

// The p-quantile (0..1) of `v` by rank; 0 for no samples.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace ft::testing
