// Reconnect delays for the DP's sync client: exponential growth with full jitter (AWS
// architecture blog "Exponential Backoff And Jitter"), so a fleet that lost its CP at the same
// moment does not reconnect in lock-step. Not thread-safe; owned by the sync thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

#include "absl/time/time.h"

namespace portico::dp {

class Backoff {
 public:
  Backoff(absl::Duration initial, absl::Duration max, uint64_t seed = std::random_device{}())
      : initial_(initial), max_(max), rng_(seed) {}

  // The delay before the next attempt: uniform in [0, min(max, initial * 2^failures)].
  absl::Duration next() {
    const int64_t initial_us = std::max<int64_t>(1, absl::ToInt64Microseconds(initial_));
    const int64_t max_us = std::max(initial_us, absl::ToInt64Microseconds(max_));
    int64_t ceiling = initial_us;
    for (uint32_t i = 0; i < failures_ && ceiling < max_us; ++i) {
      ceiling *= 2;
    }
    ceiling = std::min(ceiling, max_us);
    ++failures_;
    std::uniform_int_distribution<int64_t> dist(0, ceiling);
    return absl::Microseconds(dist(rng_));
  }

  // After a successful connection: the next outage starts from `initial` again.
  void reset() { failures_ = 0; }
  uint32_t failures() const { return failures_; }

 private:
  absl::Duration initial_;
  absl::Duration max_;
  uint32_t failures_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace portico::dp
