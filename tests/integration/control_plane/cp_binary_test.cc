// portico-cp as operators run it: one-line failures, migrations subcommands, serve, SIGTERM.
#include <catch2/catch.hpp>

#include "tests/support/test_support.h"

namespace portico::testing {
namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) {
    s.pop_back();
  }
  return s;
}

TEST_CASE("portico-cp: unreachable PostgreSQL exits non-zero with one line naming host:port") {
  const int port = freePort();
  Process cp(binaryPath("portico-cp"),
             {"--pg_dsn=host=127.0.0.1 port=" + std::to_string(port) + " dbname=x user=postgres",
              "--admin_listen=127.0.0.1:0"});
  const int rc = cp.wait(std::chrono::seconds(10));
  CHECK(rc != 0);
  CHECK(rc != -1000);
  CHECK(trimmed(cp.log()) == "portico-cp: cannot connect to PostgreSQL at 127.0.0.1:" +
                                 std::to_string(port) + ": connection refused");
}

TEST_CASE("portico-cp: migrations up/status/finish, refuses to serve when pending, serves") {
  TestPostgres pg;
  const std::string dsn = "--pg_dsn=" + pg.dsn();
  const int admin_port = freePort();
  const int cluster_port = freePort();
  const std::vector<std::string> serve_args = {
      dsn, "--admin_listen=127.0.0.1:" + std::to_string(admin_port),
      "--cluster_listen=127.0.0.1:" + std::to_string(cluster_port), "--cluster_insecure"};
  {
    Process cp(binaryPath("portico-cp"), serve_args);
    CHECK(cp.wait(std::chrono::seconds(10)) == 1);
    // Later migrations may follow; the line names every pending one in order.
    const std::string line = trimmed(cp.log());
    CHECK(line.rfind("portico-cp: database schema is not up to date (pending: 0001_init, "
                     "0002_entities",
                     0) == 0);
    CHECK(line.ends_with("); run 'portico-cp migrations up'"));
  }
  {
    Process status(binaryPath("portico-cp"), {dsn, "migrations", "status"});
    CHECK(status.wait(std::chrono::seconds(10)) == 0);
    CHECK(status.log().find("0001_init\tpending") != std::string::npos);
    CHECK(status.log().find("0002_entities\tpending") != std::string::npos);
  }
  for (int i = 0; i < 2; ++i) {
    Process up(binaryPath("portico-cp"), {dsn, "migrations", "up"});
    CHECK(up.wait(std::chrono::seconds(20)) == 0);
    CHECK(up.log().find(i == 0 ? "applied 0001_init.up" : "nothing to apply") !=
          std::string::npos);
  }
  {
    Process finish(binaryPath("portico-cp"), {dsn, "migrations", "finish"});
    CHECK(finish.wait(std::chrono::seconds(10)) == 0);
  }
  // PORTICO_<FLAG> environment variables work like flags.
  Process cp(binaryPath("portico-cp"), {"--admin_listen=127.0.0.1:" + std::to_string(admin_port),
                                        "--cluster_listen=127.0.0.1:" + std::to_string(cluster_port),
                                        "--cluster_insecure"},
             {{"PORTICO_PG_DSN", pg.dsn()}});
  REQUIRE(waitFor([&] { return httpRequest("127.0.0.1", admin_port, "GET", "/").status == 200; },
                  std::chrono::seconds(10)));
  auto created = httpRequest("127.0.0.1", admin_port, "POST", "/services",
                             R"({"name":"s","host":"a.test"})",
                             {{"Content-Type", "application/json"}});
  CHECK(created.status == 201);
  CHECK(httpRequest("127.0.0.1", admin_port, "GET", "/services/s").status == 200);
  CHECK(cp.stop() == 0);
  CHECK(cp.log().find("shutting down") != std::string::npos);
}

}  // namespace
}  // namespace portico::testing
