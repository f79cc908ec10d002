#include "ports.h"

namespace ft::daemon {

TimeSource& SteadyTimeSource() {
  struct Steady : TimeSource {
    SteadyTime Now() const override { return std::chrono::steady_clock::now(); }
  };
  static Steady clock;
  return clock;
}

}  // namespace ft::daemon
