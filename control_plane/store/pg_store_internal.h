// Helpers shared by the PgConfigStore implementation files (pg_store_impl.cc for the typed
// services/routes access and the listener, pg_entities.cc for the generic entity access).
// Internal to control_plane/store: they take libpqxx transactions and may throw.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "portico/config/v1/config.pb.h"

namespace portico::cp::detail {

// Runs `sql` as a prepared statement of `txn`'s connection, prepared on first use and named
// by a hash of its text (libpqxx keeps the definitions per connection and prepares them again
// after a reconnect; defining the same text twice is a no-op). Saves PostgreSQL's parse and
// plan on every execution: they were the largest part of the server's CPU per Admin read.
// For statements whose text does not embed values (parameters only), so their number stays
// small.
template <class... Args>
pqxx::result execPrepared(pqxx::transaction_base& txn, const std::string& sql, Args&&... args) {
  char name[24];
  std::snprintf(name, sizeof(name), "p%016zx", std::hash<std::string>{}(sql));
  txn.conn().prepare(name, sql);
  return txn.exec_prepared(name, std::forward<Args>(args)...);
}

// The NOTIFY channel of committed changes; payload '<group>:<generation>'.
inline constexpr char kNotifyChannel[] = "portico_config";

// Bumps and returns the group's generation (nullopt: no such group). The first statement of
// deletes and of the typed service/route writes: it takes the group's row lock, so they are
// serialized with every other writer of the group (batched writes lock it in finishWrite).
// `txid`, if given, receives the transaction's id (txid_current(), see CommitProbe).
std::optional<uint64_t> bumpGeneration(pqxx::work& txn, const std::string& group,
                                       uint64_t* txid = nullptr);

// Appends one change_log row and queues the (transactional) NOTIFY for the generation.
void logChangeAndNotify(pqxx::work& txn, const std::string& group, uint64_t generation,
                        const char* type, const std::string& id, const char* op);

struct Change {
  std::string type;  // entity table
  std::string id;
  const char* op;    // "upsert" or "delete"
};

// The last statement of a write transaction (a whole group-commit batch): bumps the group's
// generation once (taking its row lock until commit), appends one change_log row per change,
// all with that generation, and queues one NOTIFY '<group>:<generation>', in one round trip.
// nullopt: no such group. `txid`, if given, receives the transaction's id (see CommitProbe).
std::optional<uint64_t> finishWrite(pqxx::work& txn, const std::string& group,
                                    const std::vector<Change>& changes,
                                    uint64_t* txid = nullptr);

// What it takes to find out, after a COMMIT that got no answer, whether the write committed
// (PgConfigStore::resolveCommit): the transaction's 64-bit id, whose fate PostgreSQL keeps
// (txid_status), and one change_log row the transaction wrote, which tells it from another
// transaction that got the same id after a crash (an id whose records never reached the WAL
// can be handed out again; a committed one cannot).
struct CommitProbe {
  uint64_t txid = 0;
  int backend_pid = 0;  // the server process that ran it
  std::string group;
  uint64_t generation = 0;
  Change change;
};

// The store's answer for a write to a group that does not exist.
inline absl::Status groupNotFound(const std::string& group) {
  return absl::NotFoundError("group '" + group + "' not found");
}

// Commits `txn`. A COMMIT that fails for a connection reason (the connection or the server
// went away while it ran) may have committed all the same: that returns its kUnavailable
// status, for the caller to resolve (PgConfigStore::resolveCommit). Other failures throw.
absl::Status commitOrDoubt(pqxx::work& txn, const std::string& dsn);

// Adds every schema-driven entity of `group` (consumers, plugins, ...) to `snapshot`.
void loadSchemaEntities(pqxx::transaction_base& txn, const std::string& group,
                        config::v1::Snapshot* snapshot);

}  // namespace portico::cp::detail
