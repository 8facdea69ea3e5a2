// A counter per key (an IP address, an email) over a window that starts at the key's first
// hit, for the Dev Portal's login and sign-up limits: at most `limit` hits until `window` has
// passed since that first hit. In memory, per process: several CP replicas each allow the
// limit. Memory is bounded: expired keys are swept when the table grows, and past `max_keys`
// live keys every new key is refused (a flood of distinct keys cannot grow it). Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace portico::cp::portal {

class RateLimiter {
 public:
  // `limit` hits per `window` per key; limit 0 = no limit.
  RateLimiter(uint32_t limit, std::chrono::seconds window, size_t max_keys = 100000)
      : limit_(limit), window_(window), max_keys_(max_keys) {}

  // Counts a hit for `key` and says whether it is within the limit.
  bool allow(const std::string& key);

 private:
  const uint32_t limit_;
  const std::chrono::seconds window_;
  const size_t max_keys_;
  absl::Mutex mu_;
  struct Entry {
    std::chrono::steady_clock::time_point start;
    uint32_t hits = 0;
  };
  absl::flat_hash_map<std::string, Entry> keys_ ABSL_GUARDED_BY(mu_);
  size_t sweep_at_ ABSL_GUARDED_BY(mu_) = 1024;
};

}  // namespace portico::cp::portal
