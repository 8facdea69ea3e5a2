// The test-support library itself: a real PostgreSQL database, child processes, the echo
// upstream and the HTTP client. Every other integration test stands on these.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

using namespace portico::testing;

TEST_CASE("support: TestPostgres gives an empty, writable database and drops it") {
  TestPostgres pg;
  pg.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (41), (1);");
  CHECK(pg.psql("SELECT sum(x) FROM t") == "42\n");
  TestPostgres other;
  CHECK(other.dsn() != pg.dsn());
  CHECK(other.psql("SELECT count(*) FROM pg_tables WHERE tablename = 't'") == "0\n");
}

TEST_CASE("support: EchoUpstream echoes and records requests over real sockets") {
  EchoUpstream upstream;
  auto response = httpRequest("127.0.0.1", upstream.port(), "POST", "/a/b?c=d", "hello",
                              {{"X-Test", "1"}});
  REQUIRE(response.status == 200);
  // The format tests/conformance/plugin_cases.yaml documents.
  const auto j = nlohmann::json::parse(response.body);
  CHECK(j["method"] == "POST");
  CHECK(j["path"] == "/a/b");
  CHECK(j["uri"] == "/a/b?c=d");
  CHECK(j["query"] == nlohmann::json{{"c", "d"}});
  CHECK(j["headers"]["x-test"] == "1");
  CHECK(j["body"] == "hello");
  // Repeated headers and arguments become lists; /status/NNN answers NNN.
  auto status = httpRequest("127.0.0.1", upstream.port(), "GET", "/status/418?a=1&a=2&flag", "",
                            {{"X-Test", "1"}});
  CHECK(status.status == 418);
  const auto s = nlohmann::json::parse(status.body);
  CHECK(s["query"] == nlohmann::json{{"a", {"1", "2"}}, {"flag", true}});
  auto received = upstream.received();
  REQUIRE(received.size() == 2);
  CHECK(received[0].method == "POST");
  CHECK(received[0].headers["x-test"] == "1");
  CHECK(received[0].body == "hello");
}

TEST_CASE("support: httpRequest reports a refused connection as status 0") {
  CHECK(httpRequest("127.0.0.1", freePort(), "GET", "/").status == 0);
}

TEST_CASE("support: Process captures output and exit status") {
  Process p("/bin/sh", {"-c", "echo out; echo err >&2; exit 3"});
  CHECK(p.wait(std::chrono::seconds(10)) == 3);
  CHECK(p.log().find("out") != std::string::npos);
  CHECK(p.log().find("err") != std::string::npos);
  Process sleeper("/bin/sleep", {"30"});
  CHECK(sleeper.running());
  CHECK(sleeper.stop() == -15);
}
