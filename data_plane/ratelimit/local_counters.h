// The `local` rate-limit policy's counters: one table per DP process, shared by every worker
// thread and by both rate-limit plugins (Kong's kong_rate_limiting_counters shared dict), with
// no lock on the request path.
//
// Layout: per period, a ring of 4 fixed-size open-addressing tables; the table of a window is
// ring[windowSeq % 4], so the previous, current and next windows always have their own.
// A counter is a slot {64-bit key fingerprint, 64-bit count}: claimed with one CAS, counted
// with one fetch_add. The fingerprint hashes Kong's whole counter key (plugin route and service,
// identifier, limit name, period, window start), so windows never share a slot.
//
// Expiry happens off the request path: a sweeper thread (every 100 ms) recycles a table once
// its window is over (older than the previous window), after an epoch-based grace period: a
// request announces the epoch it started in for the few nanoseconds it touches the tables, and
// the sweeper waits until every request that could still see the old table has left before
// it returns the table's pages to the kernel (madvise MADV_DONTNEED: zero on next touch).
//
// Memory cap: 2^17 slots of 16 bytes (2 MiB) per table, 4 tables per period, 6 periods:
// at most 48 MiB mapped (lazily: only touched pages are resident; in practice the current and
// previous tables of the periods in use). A window holds up to ~131,000 counters per period
// (probe sequences are capped at 128 slots); a counter that finds no slot is not kept: its
// request sees a usage of 0 and passes, counted in misses() (Kong's shared dict evicts the
// least recently used counters when full, with the same effect on the evicted ones).
// Fingerprint collisions (two keys sharing a counter) have a probability of about n^2 / 2^65
// for n live counters in a window: ~3e-10 for 100,000.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <thread>

#include "data_plane/ratelimit/windows.h"

namespace portico::dp::ratelimit {

class LocalCounters {
 public:
  static constexpr size_t kSlotsPerTable = size_t{1} << 17;
  static constexpr size_t kTablesPerPeriod = 4;
  static constexpr size_t kProbeLimit = 128;
  static constexpr size_t kMaxThreads = 256;  // threads announcing epochs without a shared slot

  // The process-wide instance (created on first use with its sweeper thread; never destroyed).
  static LocalCounters& instance();

  // A fingerprint of Kong's counter key for (prefix, route, service, identifier, name, period,
  // window start); never 0.
  static uint64_t key(std::string_view prefix, std::string_view route_id,
                      std::string_view service_id, std::string_view identifier,
                      std::string_view name, Period period, int64_t window_start_s);

  // Every counter access happens inside a Scope (one per request and plugin): it announces the
  // current epoch so the sweeper does not recycle a table the request may still touch. Keep it
  // short; never nest two on one thread.
  class Scope {
   public:
    explicit Scope(LocalCounters& counters);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    // Adds `delta` to the counter and sets *before to its value before. False when the counter
    // cannot be kept (table full, window's table being recycled): *before is 0 then.
    bool add(Period p, int64_t window_start_s, uint64_t key, int64_t delta, int64_t* before);
    // The counter's value (0 when absent). False as for add().
    bool get(Period p, int64_t window_start_s, uint64_t key, int64_t* value);

   private:
    LocalCounters& c_;
    std::atomic<uint64_t>* announce_;  // null: counted in overflow_ instead
  };

  uint64_t misses() const { return misses_.load(std::memory_order_relaxed); }
  // misses() of the instance, 0 when no rate limiter created it yet (metrics must not start
  // the sweeper of a DP without rate limiting).
  static uint64_t missesIfCreated();
  // Tables in use (not free), for tests and /metrics.
  size_t tablesInUse() const;
  // Empties every table now (tests: called when the test clock moves).
  void clearForTesting();
  // Runs one sweeper pass now (tests); `now_s` is the clock to judge windows by.
  void sweepForTesting(int64_t now_s) { sweep(now_s); }

 private:
  struct Slot {
    std::atomic<uint64_t> key;
    std::atomic<int64_t> count;
  };
  static_assert(sizeof(Slot) == 16);
  static constexpr int64_t kFree = -1;
  static constexpr int64_t kRetired = -2;
  struct Table {
    std::atomic<int64_t> seq{kFree};  // the window it serves (windowSeq), kFree or kRetired
    Slot* slots = nullptr;            // kSlotsPerTable, mmap'ed
  };
  struct alignas(64) Announce {
    std::atomic<uint64_t> epoch{0};  // 0: not inside a Scope
    std::atomic<bool> used{false};
  };

  LocalCounters();
  ~LocalCounters() = delete;  // lives until the process exits (its sweeper thread too)

  Table* tableFor(Period p, int64_t window_start_s);
  Slot* find(Table& t, uint64_t key, bool insert);
  std::atomic<uint64_t>* announceSlot();
  void sweep(int64_t now_s);
  void recycle(Table& t);  // t.seq is kRetired: grace period, then zero it and free it
  void sweeperLoop();

  Table tables_[kPeriods][kTablesPerPeriod];
  Announce announces_[kMaxThreads];
  std::atomic<uint64_t> overflow_active_{0};
  std::atomic<uint64_t> epoch_{1};
  std::atomic<uint64_t> misses_{0};
  std::mutex sweep_mu_;  // one sweeper pass at a time (the thread or a test)
  std::thread sweeper_;
};

}  // namespace portico::dp::ratelimit
