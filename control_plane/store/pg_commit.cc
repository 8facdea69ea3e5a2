// Commit uncertainty: a write transaction whose COMMIT got no answer (the connection or the
// server went away while it ran) may have committed or not. The store finds out on a fresh
// connection before it answers, so the Admin API never says "retry later" for a write that
// committed (docs/design.md, "Commit uncertainty").
#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "control_plane/store/pg_store_impl.h"
#include "control_plane/store/pg_store_internal.h"

namespace portico::cp {

namespace detail {

absl::Status commitOrDoubt(pqxx::work& txn, const std::string& dsn) {
  try {
    txn.commit();
    return absl::OkStatus();
  } catch (const std::exception& e) {
    // libpqxx says in_doubt_error when the connection broke during COMMIT; a server shutting
    // down can also answer the COMMIT with FATAL 57P01 after the commit record was written.
    // Anything that is not a plain SQL error from a live server is therefore in doubt.
    const absl::Status st = statusFromException(e, dsn);
    if (!absl::IsUnavailable(st)) {
      throw;
    }
    return st;
  }
}

}  // namespace detail

namespace {
constexpr char kCommitUnknownPayload[] = "portico.dev/commit-outcome-unknown";
}  // namespace

absl::Status commitOutcomeUnknown(const std::string& what) {
  absl::Status st = absl::UnavailableError(
      absl::StrCat("the database connection was lost while committing ", what,
                   ", and whether it committed could not be determined"));
  st.SetPayload(kCommitUnknownPayload, absl::Cord("1"));
  return st;
}

bool isCommitOutcomeUnknown(const absl::Status& status) {
  return status.GetPayload(kCommitUnknownPayload).has_value();
}

absl::Status PgConfigStore::resolveCommit(const detail::CommitProbe& probe,
                                          const absl::Status& lost) {
  using Clock = std::chrono::steady_clock;
  const std::string what = absl::StrCat(probe.change.type, " ", probe.change.id, " (generation ",
                                        probe.generation, " of group '", probe.group, "')");
  LOG_WARN("store", "no answer to the COMMIT of %s: %s; finding out whether it committed", what,
           lost.message());
  enum class Fate { kPending, kCommitted, kAborted, kUnknown };
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + options_.commit_resolve_timeout;
  Fate fate = Fate::kPending;
  absl::Status last = lost;
  while (fate == Fate::kPending && Clock::now() < deadline) {
    const auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    last = pool_.run(
        [&](pqxx::connection& conn) -> absl::Status {
          pqxx::nontransaction txn(conn);
          pqxx::result r;
          try {
            r = txn.exec_params(
                "SELECT txid_status($1), EXISTS (SELECT 1 FROM change_log WHERE group_name = $2 "
                "AND generation = $3 AND entity_type = $4 AND entity_id = $5::uuid AND op = $6)",
                probe.txid, probe.group, probe.generation, probe.change.type, probe.change.id,
                probe.change.op);
          } catch (const pqxx::sql_error& e) {
            // 22023 "transaction ID ... is in the future": the server's history (after crash
            // recovery) never had this transaction, so it did not commit.
            if (e.sqlstate() == "22023") {
              fate = Fate::kAborted;
              return absl::OkStatus();
            }
            throw;
          }
          if (r[0][0].is_null()) {
            fate = Fate::kUnknown;  // too old for PostgreSQL to remember; cannot happen soon
            return absl::OkStatus();
          }
          const std::string status = r[0][0].as<std::string>();
          if (status == "aborted") {
            fate = Fate::kAborted;
          } else if (status == "committed") {
            // Without our change_log row it is another transaction that was given the same id
            // after a crash (ours then never reached the WAL), or the row was pruned already:
            // not provable either way.
            fate = r[0][1].as<bool>() ? Fate::kCommitted : Fate::kUnknown;
          } else if (Clock::now() - start > std::chrono::seconds(1)) {
            // Still in progress: the server never got the COMMIT and waits for a client it
            // does not know is gone. Ending that backend (ours: same pid, same transaction)
            // makes the fate final; the next round reads it.
            txn.exec_params(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND "
                "backend_xid::text = $2",
                probe.backend_pid, std::to_string(probe.txid & 0xffffffffu));
          }
          return absl::OkStatus();
        },
        std::min<std::chrono::milliseconds>(remaining, std::chrono::seconds(2)));
    if (fate == Fate::kPending) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  switch (fate) {
    case Fate::kCommitted:
      in_doubt_committed_.fetch_add(1, std::memory_order_relaxed);
      LOG_WARN("store", "%s did commit (found out in %d ms)", what, took);
      return absl::OkStatus();
    case Fate::kAborted:
      in_doubt_aborted_.fetch_add(1, std::memory_order_relaxed);
      LOG_WARN("store", "%s did not commit (found out in %d ms)", what, took);
      return lost;
    case Fate::kPending:
    case Fate::kUnknown:
      break;
  }
  in_doubt_unknown_.fetch_add(1, std::memory_order_relaxed);
  LOG_ERROR("store", "whether %s committed is unknown after %d ms (last: %s)", what, took,
            last.message());
  return commitOutcomeUnknown(what);
}

}  // namespace portico::cp
