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
    return queue_.size() + (busy_ ? 1 : 0);
  }

 private:
  void loop() {
    for (;;) {
      std::shared_ptr<const T> old;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stop_ || !queue_.empty();
        };
        mu_.Await(absl::Condition(&ready));
        if (queue_.empty()) {
          return;  // stopping
        }
        old = std::move(queue_.front());
        queue_.pop_front();
        busy_ = true;
      }
      // Requests that started on the old value still hold it; they end within milliseconds.
      const absl::Time deadline = absl::Now() + max_wait_;
      while (old.use_count() > 1 && absl::Now() < deadline && !stopping()) {
        absl::SleepFor(absl::Milliseconds(2));
      }
      old.reset();
      if (after_release_) {
        after_release_();
      }
      absl::MutexLock lock(&mu_);
      busy_ = false;
    }
  }

  bool stopping() const {
    absl::MutexLock lock(&mu_);
    return stop_;
  }

  const std::function<void()> after_release_;
  const absl::Duration max_wait_;
  mutable absl::Mutex mu_;
  std::deque<std::shared_ptr<const T>> queue_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts after the members above exist
};

}  // namespace portico
