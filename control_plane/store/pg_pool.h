// PgPool: a small pool of libpqxx connections for the control plane's blocking DB work, and
// the one place libpqxx exceptions become absl::Status. Callers run on DB worker threads,
// never on an HTTP I/O thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace portico::cp {

// "host:port" a libpq DSN (key=value or URI) points at, with libpq's defaults and PG*
// environment applied; used in one-line error messages.
std::string dsnTarget(const std::string& dsn);

// Kong-independent status for a libpqxx exception. Unique violations answer kAlreadyExists
// with the violated key's column as message ("id" or "name"); foreign-key violations
// kFailedPrecondition; lost or refused connections kUnavailable with
// "cannot connect to PostgreSQL at <host:port>: <reason>".
absl::Status statusFromException(const std::exception& e, const std::string& dsn);

class PgPool {
 public:
  PgPool(std::string dsn, int size);
  ~PgPool();

  // Runs `fn` with a connection from the pool (opened on demand), waiting up to
  // `acquire_timeout` for one to be free. Any exception `fn` throws is mapped by
  // statusFromException; a connection that broke is dropped, not returned to the pool.
  // Thread-safe; blocks, so call it from a DB worker thread.
  absl::Status run(const std::function<absl::Status(pqxx::connection&)>& fn,
                   std::chrono::milliseconds acquire_timeout = std::chrono::seconds(10));

  const std::string& dsn() const { return dsn_; }

  // For /metrics: connections by state, callers waiting now, and what waiting cost so far.
  struct Stats {
    int size = 0;      // the most connections it opens
    int in_use = 0;    // lent to a caller
    int idle = 0;      // open, free
    int waiting = 0;   // callers blocked for a connection now
    uint64_t waits = 0;          // acquisitions that had to wait
    uint64_t wait_timeouts = 0;  // acquisitions that gave up ("all connections are busy")
    double wait_seconds = 0;     // total time callers waited
  };
  Stats stats() const;

 private:
  std::unique_ptr<pqxx::connection> acquire(std::chrono::milliseconds timeout, absl::Status* st);
  void release(std::unique_ptr<pqxx::connection> conn);

  const std::string dsn_;
  const int size_;
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t waits_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t wait_timeouts_ ABSL_GUARDED_BY(mu_) = 0;
  double wait_seconds_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace portico::cp
