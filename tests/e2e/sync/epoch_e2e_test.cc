// Sync identity with the real processes: after the database is restored from a backup
// (pg_dump / pg_restore, so its generation goes back) or rebuilt from scratch, running data
// planes and a data plane restarted from its config cache converge on what the database
// says, instead of waiting for the generation to catch up with what they ran before.
#include <chrono>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/e2e_cluster.h"
#include "tests/support/test_support.h"

namespace {

using namespace std::chrono_literals;
using namespace portico::testing;
using nlohmann::json;

void adminOk(Cp& cp, const std::string& path, const json& body) {
  HttpResponse r = cp.admin("POST", path, body.dump());
  INFO("POST " << path << " -> " << r.status << " " << r.body);
  REQUIRE(r.status == 201);
}

uint64_t cpGeneration(Cp& cp) {
  const json j = json::parse(cp.admin("GET", "/status").body, nullptr, false);
  return j.is_object() ? j["configuration"].value("generation", uint64_t{0}) : 0;
}

// The DP serves `path` with `status`, and runs the CP's generation, within `timeout`.
bool converges(Cp& cp, Dp& dp, const std::string& path, int status,
               std::chrono::milliseconds timeout = 10s) {
  return waitFor([&] { return dp.get(path) == status && dp.generation() == cpGeneration(cp); },
                 timeout);
}

std::string psql(const Postgres& pg, const std::string& sql, const std::string& db = "postgres") {
  return "psql -h 127.0.0.1 -p " + std::to_string(pg.port) + " -U postgres -d " + db +
         " -qc \"" + sql + "\"";
}

TEST_CASE("e2e sync: DPs converge after the database is restored from a backup or rebuilt") {
  Postgres pg;
  migrate(pg.dsn());
  EchoUpstream echo;
  TempDir dir;
  Cp cp(pg.dsn());
  Dp dp(cp.cluster_port, dir.path + "/dp.cache");
  const std::string url = "http://127.0.0.1:" + std::to_string(echo.port());
  adminOk(cp, "/services", {{"name", "svc"}, {"url", url}});
  adminOk(cp, "/services/svc/routes", {{"name", "old"}, {"paths", {"/old"}}});
  REQUIRE(converges(cp, dp, "/old", 200));

  // The backup, then writes the backup does not have.
  const std::string dump = dir.path + "/portico.dump";
  REQUIRE(sh("pg_dump -h 127.0.0.1 -p " + std::to_string(pg.port) +
             " -U postgres -Fc -f " + dump + " portico"));
  for (const char* name : {"gone1", "gone2", "gone3"}) {
    adminOk(cp, "/services/svc/routes",
            {{"name", name}, {"paths", {std::string("/") + name}}});
  }
  REQUIRE(converges(cp, dp, "/gone3", 200));
  const uint64_t before_restore = dp.generation();

  SECTION("restored from the backup: the running DP drops what the backup lacks") {
    cp.kill9();
    REQUIRE(sh(psql(pg, "DROP DATABASE portico WITH (FORCE)")));
    REQUIRE(sh(psql(pg, "CREATE DATABASE portico")));
    REQUIRE(sh("pg_restore -h 127.0.0.1 -p " + std::to_string(pg.port) +
               " -U postgres -d portico " + dump));
    cp.start();
    // The database is behind what the DP ran, in the same epoch: a new epoch starts and the
    // DP takes the database's config at once (no write needed to get past its generation).
    CHECK(converges(cp, dp, "/gone3", 404));
    CHECK(dp.get("/old") == 200);
    CHECK(cp.proc->log().find("started a new epoch") != std::string::npos);
    CHECK(cpGeneration(cp) < before_restore);
    // And later writes flow as usual.
    adminOk(cp, "/services/svc/routes", {{"name", "after"}, {"paths", {"/after"}}});
    CHECK(converges(cp, dp, "/after", 200));
  }

  SECTION("rebuilt from scratch: a DP restarted from its cache takes the new config") {
    dp.kill9();
    cp.kill9();
    REQUIRE(sh(psql(pg, "DROP DATABASE portico WITH (FORCE)")));
    REQUIRE(sh(psql(pg, "CREATE DATABASE portico")));
    migrate(pg.dsn());
    cp.start();
    adminOk(cp, "/services", {{"name", "svc"}, {"url", url}});
    adminOk(cp, "/services/svc/routes", {{"name", "fresh"}, {"paths", {"/fresh"}}});
    REQUIRE(cpGeneration(cp) < before_restore);
    dp.start();  // serves its cache (generation before_restore, the old epoch) first
    CHECK(converges(cp, dp, "/fresh", 200));
    CHECK(dp.get("/old") == 404);
  }
}

}  // namespace
