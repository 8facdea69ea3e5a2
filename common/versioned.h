// Versioned<T>: the one place config is published across threads. Writers build a whole
// immutable T off the request path and set() it; readers get() a shared_ptr once and keep it
// for as long as they need a consistent view (cf. ClickHouse MultiVersion, Envoy's RDS swap).
#pragma once

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace portico {

template <class T>
class Versioned {
 public:
  std::shared_ptr<const T> get() const {
    absl::MutexLock lock(&mu_);
    return current_;
  }

  // Publishes `value` and returns the previous one, outside the lock, so a reader never waits
  // on a destructor (and the caller may choose where the previous value is destroyed).
  std::shared_ptr<const T> set(std::shared_ptr<const T> value) {
    {
      absl::MutexLock lock(&mu_);
      current_.swap(value);
    }
    return value;
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const T> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace portico
