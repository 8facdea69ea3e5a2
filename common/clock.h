// Monotonic time in the integer units the data plane's timers and health state keep.
#pragma once

#include <chrono>
#include <cstdint>

namespace portico {

// Milliseconds on the steady clock (an arbitrary epoch: compare, never print).
inline uint64_t steadyMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace portico
