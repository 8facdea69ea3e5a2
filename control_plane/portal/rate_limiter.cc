#include "control_plane/portal/rate_limiter.h"

#include <algorithm>

namespace portico::cp::portal {

bool RateLimiter::allow(const std::string& key) {
  if (limit_ == 0) {
    return true;
  }
  const auto now = std::chrono::steady_clock::now();
  absl::MutexLock lock(&mu_);
  if (keys_.size() >= sweep_at_) {
    absl::erase_if(keys_, [&](const auto& kv) { return now - kv.second.start >= window_; });
    sweep_at_ = std::max<size_t>(1024, 2 * keys_.size());
  }
  auto it = keys_.find(key);
  if (it != keys_.end() && now - it->second.start >= window_) {
    it->second = Entry{now, 0};
  }
  if (it == keys_.end()) {
    if (keys_.size() >= max_keys_) {
      return false;
    }
    it = keys_.emplace(key, Entry{now, 0}).first;
  }
  if (it->second.hits <= limit_) {  // stops counting past the limit (no wrap-around)
    ++it->second.hits;
  }
  return it->second.hits <= limit_;
}

}  // namespace portico::cp::portal
