#include "control_plane/store/migrations.h"

#include <map>

#include <pqxx/pqxx>

#include "common/logging.h"
#include "control_plane/store/pg_pool.h"

namespace portico::cp {
namespace {

// Same DDL as in 0001_init.up.sql; needed before the first step can be recorded.
constexpr char kBootstrap[] = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  name               text PRIMARY KEY,
  up_applied_at      timestamptz,
  finish_applied_at  timestamptz
))sql";

// Arbitrary, fixed key for pg_advisory_lock: "portico" in ASCII.
constexpr int64_t kLockKey = 0x706f727469636fLL;

struct Applied {
  bool up = false;
  bool finish = false;
};

std::map<std::string, Applied> readApplied(pqxx::connection& conn) {
  std::map<std::string, Applied> out;
  pqxx::work txn(conn);
  const pqxx::result exists = txn.exec("SELECT to_regclass('schema_migrations') IS NOT NULL");
  if (!exists[0][0].as<bool>()) {
    return out;
  }
  for (const auto& row : txn.exec(
           "SELECT name, up_applied_at IS NOT NULL, finish_applied_at IS NOT NULL "
           "FROM schema_migrations")) {
    out[row[0].as<std::string>()] = Applied{row[1].as<bool>(), row[2].as<bool>()};
  }
  txn.commit();
  return out;
}

absl::StatusOr<std::vector<std::string>> apply(const std::string& dsn, bool finish,
                                               const std::vector<EmbeddedMigration>& migrations) {
  std::vector<std::string> done;
  try {
    pqxx::connection conn(dsn);
    // Session-level lock: held across the per-step transactions, released on disconnect.
    {
      pqxx::nontransaction lock(conn);
      lock.exec("SELECT pg_advisory_lock(" + std::to_string(kLockKey) + ")");
    }
    {
      pqxx::work txn(conn);
      txn.exec(kBootstrap);
      txn.commit();
    }
    // Read after taking the lock, so a concurrent migrator's work is seen and not redone.
    const std::map<std::string, Applied> applied = readApplied(conn);
    for (const EmbeddedMigration& m : migrations) {
      auto it = applied.find(m.name);
      const Applied state = it == applied.end() ? Applied{} : it->second;
      const char* sql = finish ? m.finish_sql : m.up_sql;
      if (sql == nullptr || (finish ? state.finish : state.up)) {
        continue;
      }
      if (finish && !state.up) {
        continue;  // a finish step only runs after its up step
      }
      pqxx::work txn(conn);
      txn.exec(sql);
      txn.exec_params(finish ? "UPDATE schema_migrations SET finish_applied_at = now() "
                               "WHERE name = $1"
                             : "INSERT INTO schema_migrations (name, up_applied_at) "
                               "VALUES ($1, now()) ON CONFLICT (name) DO UPDATE "
                               "SET up_applied_at = now()",
                      std::string(m.name));
      txn.commit();
      LOG_INFO("migrations", "applied %s.%s", m.name, finish ? "finish" : "up");
      done.emplace_back(m.name);
    }
    pqxx::nontransaction unlock(conn);
    unlock.exec("SELECT pg_advisory_unlock(" + std::to_string(kLockKey) + ")");
  } catch (const std::exception& e) {
    return statusFromException(e, dsn);
  }
  return done;
}

}  // namespace

absl::StatusOr<std::vector<MigrationState>> migrationStatus(const std::string& dsn) {
  return migrationStatus(dsn, embeddedMigrations());
}

absl::StatusOr<std::vector<MigrationState>> migrationStatus(
    const std::string& dsn, const std::vector<EmbeddedMigration>& migrations) {
  std::vector<MigrationState> out;
  try {
    pqxx::connection conn(dsn);
    const std::map<std::string, Applied> applied = readApplied(conn);
    for (const EmbeddedMigration& m : migrations) {
      MigrationState s;
      s.name = m.name;
      s.has_finish = m.finish_sql != nullptr;
      if (auto it = applied.find(m.name); it != applied.end()) {
        s.up_applied = it->second.up;
        s.finish_applied = it->second.finish;
      }
      out.push_back(std::move(s));
    }
  } catch (const std::exception& e) {
    return statusFromException(e, dsn);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> migrateUp(const std::string& dsn) {
  return apply(dsn, false, embeddedMigrations());
}

absl::StatusOr<std::vector<std::string>> migrateFinish(const std::string& dsn) {
  return apply(dsn, true, embeddedMigrations());
}

absl::StatusOr<std::vector<std::string>> migrateUp(
    const std::string& dsn, const std::vector<EmbeddedMigration>& migrations) {
  return apply(dsn, false, migrations);
}

absl::StatusOr<std::vector<std::string>> migrateFinish(
    const std::string& dsn, const std::vector<EmbeddedMigration>& migrations) {
  return apply(dsn, true, migrations);
}

absl::StatusOr<std::vector<std::string>> pendingMigrations(const std::string& dsn) {
  auto states = migrationStatus(dsn);
  if (!states.ok()) {
    return states.status();
  }
  std::vector<std::string> pending;
  for (const auto& s : *states) {
    if (!s.up_applied) {
      pending.push_back(s.name);
    }
  }
  return pending;
}

}  // namespace portico::cp
