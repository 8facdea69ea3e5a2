// The test-support library itself: a real PostgreSQL database, child processes, the echo
// upstream and the HTTP client. Every other integration test stands on these.
#include <catch2/catch.hpp>

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
  CHECK(response.body.find("\"path\":\"/a/b?c=d\"") != std::string::npos);
  auto received = upstream.received();
  REQUIRE(received.size() == 1);
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
