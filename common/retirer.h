// Retirer<T>: destroys replaced immutable objects (config snapshots) on its own thread once no
// one else holds them. Destroying a 30k-entity snapshot takes tens of milliseconds; without
// this it falls on whichever proxy worker drops the last reference at the end of a request,
// and shows in that worker's tail latency (tests/bench/RESULTS.md, "proxy p99 during
// applies"). The publishing thread does not wait either: it hands the old value over and
// goes on (a DP ACKs a push right after its swap).
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace portico {

template <class T>
class Retirer {
 public:
  // `after_release` runs on the retirer's thread after each destruction (e.g. malloc_trim).
  // An object still held after `max_wait` (a WebSocket, a long download) is let go: its last
  // holder destroys it.
  explicit Retirer(std::function<void()> after_release = {},
                   absl::Duration max_wait = absl::Seconds(30))
      : after_release_(std::move(after_release)), max_wait_(max_wait),
        thread_([this] { loop(); }) {}

  // Stops the thread; whatever is still queued is released here.
  ~Retirer() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }

  Retirer(const Retirer&) = delete;
  Retirer& operator=(const Retirer&) = delete;

  // Takes over `old` (may be null). Never blocks on a destructor.
  void retire(std::shared_ptr<const T> old) {
    if (old == nullptr) {
      return;
    }
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(old));
  }

  // Objects handed over and not destroyed or let go yet (for tests and status).
  size_t pending() const {
    absl::MutexLock lock(&mu_);
    return queue_.size() + held_;
  }

 private:
  struct Held {
    std::shared_ptr<const T> value;
    absl::Time deadline;
  };

  void loop() {
    // Every held object is checked on each tick, so one kept alive by a long request never
    // holds up the ones behind it.
    std::vector<Held> held;
    for (;;) {
      bool stopping;
      {
        absl::MutexLock lock(&mu_);
        if (held.empty()) {
          auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
            return stop_ || !queue_.empty();
          };
          mu_.Await(absl::Condition(&ready));
        }
        const absl::Time deadline = absl::Now() + max_wait_;
        for (auto& value : queue_) {
          held.push_back({std::move(value), deadline});
        }
        queue_.clear();
        stopping = stop_;
        held_ = held.size();
      }
      if (held.empty() && stopping) {
        return;
      }
      const absl::Time now = absl::Now();
      bool released = false;
      for (auto it = held.begin(); it != held.end();) {
        // use_count() == 1: only we hold it, so it is destroyed here. Past the deadline (or
        // at shutdown) it is let go, and its last holder destroys it.
        if (stopping || it->value.use_count() == 1 || now >= it->deadline) {
          released = released || it->value.use_count() == 1;
          it = held.erase(it);
        } else {
          ++it;
        }
      }
      if (released && after_release_) {
        after_release_();
      }
      {
        absl::MutexLock lock(&mu_);
        held_ = held.size();
      }
      if (!held.empty()) {
        absl::SleepFor(absl::Milliseconds(2));
      }
    }
  }

  const std::function<void()> after_release_;
  const absl::Duration max_wait_;
  mutable absl::Mutex mu_;
  std::deque<std::shared_ptr<const T>> queue_ ABSL_GUARDED_BY(mu_);
  size_t held_ ABSL_GUARDED_BY(mu_) = 0;  // taken from queue_, not released yet
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts after the members above exist
};

}  // namespace portico
