// change_log retention. Every write appends change_log rows and nothing else removes them, yet
// deltas only ever read the newest generations of a group (the sync server's retained window).
// pruneChangeLog() deletes, one bounded batch at a time, the rows older than the newest
// `keep_generations` generations of each group; ChangeLogPruner runs it periodically on its
// own thread and PostgreSQL connection. libpqxx never escapes.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "control_plane/store/pg_pool.h"

namespace portico::cp {

// Key of the transaction-scoped advisory lock each prune batch takes with
// pg_try_advisory_xact_lock: "cl_prune" in ASCII. Distinct from the migrations' lock, so a
// prune never waits for a migration or the reverse; holding it pauses every replica's pruning.
inline constexpr int64_t kChangeLogPruneLockKey = 0x636c5f7072756e65LL;

// One batch of change_log retention, in one short transaction: deletes the oldest rows of
// `group` (every group if empty) whose generation is at or below the group's current
// generation minus `keep_generations`: `batch_limit` of them, plus the rest of the last
// generation reached, since generations go whole (see pg_changes.cc: loadChanges() counts the
// generations of a range, so a half-pruned one would pass as complete). What remains of a
// group's log is therefore always its newest generations without holes. A delta from base B
// reads the rows of generations > B, so every base >= current - keep_generations still gets
// its delta, and an older one gets kOutOfRange (a full snapshot).
// Returns the rows deleted: fewer than `batch_limit` means nothing was left to prune when it
// ran; callers repeat it until then (each call holds its row locks only for one batch).
// kAborted when another control plane is in a batch at that moment (it holds the prune
// lock, a transaction-scoped advisory lock: replicas never delete the same rows twice);
// kUnavailable when PostgreSQL cannot be reached; kInvalidArgument for batch_limit 0.
// Blocks on the database: call it from a DB worker thread.
absl::StatusOr<uint64_t> pruneChangeLog(PgPool& pool, const std::string& group,
                                        uint64_t keep_generations, uint64_t batch_limit);

struct ChangeLogPrunerOptions {
  std::string dsn;
  // Generations of change_log kept per group (--cluster_change_log_retention).
  uint64_t keep_generations = 1000;
  // The sync server's delta window: keep_generations below it is raised to it (logged once),
  // since pruning inside the window would turn its deltas into full snapshots.
  uint64_t min_keep_generations = 0;
  uint64_t batch_limit = 10000;
  absl::Duration first_round_after = absl::Seconds(5);
  absl::Duration interval = absl::Seconds(60);
};

class ChangeLogPruner {
 public:
  // Starts no thread until start(); opens its single connection on first use.
  explicit ChangeLogPruner(ChangeLogPrunerOptions options);
  ~ChangeLogPruner();
  ChangeLogPruner(const ChangeLogPruner&) = delete;
  ChangeLogPruner& operator=(const ChangeLogPruner&) = delete;

  // Runs a round first_round_after the call, then one every interval. Failures (PostgreSQL
  // down) are logged at warn and retried next round.
  void start();
  // Ends the thread after at most the batch in flight; idempotent. Called by the destructor.
  void stop();

  // One round now (the thread's step; tests call it directly): batches of every group until
  // one deletes fewer than batch_limit rows, another replica is pruning, or stop() is called.
  // Returns the rows deleted by this round, or the error that ended it (rows deleted before
  // it are counted in stats()). Another replica pruning at the same time ends it with OK.
  absl::StatusOr<uint64_t> runRound();

  // The retention in effect: keep_generations, raised to min_keep_generations.
  uint64_t keepGenerations() const { return keep_generations_; }

  struct Stats {
    uint64_t rounds = 0, batches = 0, rows_deleted = 0, failures = 0;
  };
  Stats stats() const;

 private:
  void loop();

  const ChangeLogPrunerOptions options_;
  const uint64_t keep_generations_;
  // Its own connection: a long prune never waits for, or holds, an Admin API or delta-read
  // connection.
  PgPool pool_;
  std::atomic<uint64_t> rounds_{0}, batches_{0}, rows_deleted_{0}, failures_{0};
  absl::Notification stop_;
  std::atomic<bool> stopped_{false};
  std::thread thread_;
};

}  // namespace portico::cp
