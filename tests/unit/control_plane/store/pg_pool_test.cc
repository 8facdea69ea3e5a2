// Pure parts of the store and Admin API edges: DSN targets for error lines, and the one
// absl::Status -> HTTP translation.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "control_plane/admin_api/admin_api.h"
#include "control_plane/store/migrations.h"
#include "control_plane/store/pg_pool.h"

namespace portico::cp {
namespace {

TEST_CASE("dsnTarget: key=value and URI forms, libpq defaults") {
  ::unsetenv("PGHOST");
  ::unsetenv("PGPORT");
  CHECK(dsnTarget("host=127.0.0.1 port=5432 dbname=portico user=postgres") == "127.0.0.1:5432");
  CHECK(dsnTarget("postgresql://u@db.example:6543/x") == "db.example:6543");
  CHECK(dsnTarget("dbname=x") == "localhost:5432");
}

TEST_CASE("toHttpStatus: one translation of status codes") {
  CHECK(toHttpStatus(absl::StatusCode::kInvalidArgument) == 400);
  CHECK(toHttpStatus(absl::StatusCode::kFailedPrecondition) == 400);
  CHECK(toHttpStatus(absl::StatusCode::kNotFound) == 404);
  CHECK(toHttpStatus(absl::StatusCode::kAlreadyExists) == 409);
  CHECK(toHttpStatus(absl::StatusCode::kUnavailable) == 503);
  CHECK(toHttpStatus(absl::StatusCode::kInternal) == 500);
}

TEST_CASE("embedded migrations: in filename order, starting with 0001_init") {
  const auto& all = embeddedMigrations();
  REQUIRE_FALSE(all.empty());
  CHECK(std::string(all[0].name) == "0001_init");
  CHECK(std::string(all[0].up_sql).find("CREATE TABLE IF NOT EXISTS services") !=
        std::string::npos);
  for (size_t i = 1; i < all.size(); ++i) {
    CHECK(std::string(all[i - 1].name) < std::string(all[i].name));
  }
}

}  // namespace
}  // namespace portico::cp
