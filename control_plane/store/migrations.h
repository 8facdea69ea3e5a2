// Schema migrations: the migrations/NNNN_<what>.up.sql (+ .finish.sql) files, embedded at
// build time, applied in filename order and recorded in schema_migrations. Every step runs
// under a PostgreSQL advisory lock, so two control planes migrating at once apply each step
// exactly once; running `up` twice is a no-op.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace portico::cp {

struct EmbeddedMigration {
  const char* name;        // "0001_init"
  const char* up_sql;      // additive part, safe while older CPs run
  const char* finish_sql;  // destructive part, or nullptr
};
// Generated from migrations/*.sql by embed_migrations.cmake, in filename order.
const std::vector<EmbeddedMigration>& embeddedMigrations();

struct MigrationState {
  std::string name;
  bool up_applied = false;
  bool has_finish = false;
  bool finish_applied = false;
};

// The state of every embedded migration in `dsn`'s database. kUnavailable if unreachable.
absl::StatusOr<std::vector<MigrationState>> migrationStatus(const std::string& dsn);
// Applies every pending up step (each in its own transaction); returns the names applied.
absl::StatusOr<std::vector<std::string>> migrateUp(const std::string& dsn);
// Applies every pending finish step whose up step has run; returns the names applied.
absl::StatusOr<std::vector<std::string>> migrateFinish(const std::string& dsn);
// The names of up steps not yet applied (serving refuses to start while any are pending).
absl::StatusOr<std::vector<std::string>> pendingMigrations(const std::string& dsn);

// The same over an explicit list instead of the embedded one (tests exercise finish steps
// with fixtures this way, without shipping a destructive migration).
absl::StatusOr<std::vector<MigrationState>> migrationStatus(
    const std::string& dsn, const std::vector<EmbeddedMigration>& migrations);
absl::StatusOr<std::vector<std::string>> migrateUp(
    const std::string& dsn, const std::vector<EmbeddedMigration>& migrations);
absl::StatusOr<std::vector<std::string>> migrateFinish(
    const std::string& dsn, const std::vector<EmbeddedMigration>& migrations);

}  // namespace portico::cp
