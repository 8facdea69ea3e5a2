// An in-memory ConfigStore for sync tests: per-group snapshots and generation counters, a
// switch that makes reads fail with kUnavailable, and commit() that bumps the generation and
// fires the change callback like the PostgreSQL store's NOTIFY listener would.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "control_plane/store/store.h"

namespace portico::testing {

class FakeConfigStore final : public cp::ConfigStore {
 public:
  absl::StatusOr<config::v1::Snapshot> loadSnapshot(const std::string& group) override {
    absl::MutexLock lock(&mu_);
    ++loads_;
    if (unavailable_) {
      return absl::UnavailableError("database is down (test)");
    }
    auto it = groups_.find(group);
    if (it == groups_.end()) {
      return absl::NotFoundError("no such group: " + group);
    }
    return it->second;
  }

  absl::StatusOr<uint64_t> currentGeneration(const std::string& group) override {
    absl::MutexLock lock(&mu_);
    auto it = groups_.find(group);
    return it == groups_.end() ? 0 : it->second.generation();
  }

  void setChangeCallback(ChangeCallback callback) override {
    absl::MutexLock lock(&mu_);
    callback_ = std::move(callback);
  }

  // Applies `mutate` to the group's config as one commit; returns the new generation.
  uint64_t commit(const std::string& group,
                  const std::function<void(config::v1::Snapshot&)>& mutate) {
    ChangeCallback cb;
    uint64_t generation;
    {
      absl::MutexLock lock(&mu_);
      config::v1::Snapshot& s = groups_[group];
      s.set_group(group);
      s.set_generation(s.generation() + 1);
      mutate(s);
      generation = s.generation();
      cb = callback_;
    }
    if (cb) {
      cb(group, generation);
    }
    return generation;
  }

  void setUnavailable(bool unavailable) {
    absl::MutexLock lock(&mu_);
    unavailable_ = unavailable;
  }
  int loads() {
    absl::MutexLock lock(&mu_);
    return loads_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, config::v1::Snapshot> groups_;
  ChangeCallback callback_;
  bool unavailable_ = false;
  int loads_ = 0;
};

}  // namespace portico::testing
