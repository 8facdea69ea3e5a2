// POST /config end to end: a real portico-cp on a private PostgreSQL, real portico-dp nodes of
// two groups and an echo upstream. A posted declarative file is served by the group's DPs
// (and only theirs), a second file replaces it (routes it lacks stop answering), and an
// invalid one changes nothing the DPs serve.
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/e2e_cluster.h"
#include "tests/support/test_support.h"

namespace {

using namespace std::chrono_literals;
using namespace portico::testing;
using nlohmann::json;

// A 3.0 file: one service on the echo upstream and a route /<path> for each path.
std::string file(int upstream_port, const std::vector<std::string>& paths) {
  std::string out = "_format_version: \"3.0\"\nservices:\n- name: echo\n  url: http://127.0.0.1:" +
                    std::to_string(upstream_port) + "\n  routes:\n";
  for (const std::string& p : paths) {
    out += "  - name: route-" + p + "\n    paths: [/" + p + "]\n";
  }
  return out;
}

TEST_CASE("e2e config: a POSTed file is what the group's DPs serve") {
  EchoUpstream upstream;
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  REQUIRE(cp.admin("POST", "/control-planes", R"({"name":"eu"})").status == 201);
  TempDir cache;
  Dp dp(cp.cluster_port, cache.path + "/dp.cache");
  Dp eu(cp.cluster_port, cache.path + "/eu.cache", {"--cluster_insecure", "--control_plane=eu"});

  HttpResponse r = cp.admin("POST", "/config", file(upstream.port(), {"one", "two"}));
  INFO(r.body.substr(0, 500));
  REQUIRE(r.status == 201);
  REQUIRE(waitFor([&] { return dp.get("/one") == 200 && dp.get("/two") == 200; }, 20s));
  const uint64_t first = cp.committedGeneration();
  REQUIRE(waitFor([&] { return dp.generation() == first; }, 10s));

  // The second file replaces the first: /one goes, /three comes, in one generation.
  r = cp.admin("POST", "/config", file(upstream.port(), {"two", "three"}));
  REQUIRE(r.status == 201);
  CHECK(cp.committedGeneration() == first + 1);
  REQUIRE(waitFor([&] { return dp.get("/three") == 200; }, 20s));
  CHECK(dp.get("/one") == 404);
  CHECK(dp.get("/two") == 200);
  REQUIRE(waitFor([&] { return dp.generation() == first + 1; }, 10s));

  // An invalid file: 400, and the DP keeps serving the same generation.
  r = cp.admin("POST", "/config", "_format_version: \"3.0\"\nroutes:\n- paths: [/x]\n  service: nope\n");
  CHECK(r.status == 400);
  CHECK(json::parse(r.body)["code"] == 14);
  CHECK(cp.committedGeneration() == first + 1);
  CHECK(dp.get("/three") == 200);

  // Another group's file reaches that group's DP only; the default one keeps its own.
  r = cp.admin("POST", "/control-planes/eu/config", file(upstream.port(), {"eu-only"}));
  REQUIRE(r.status == 201);
  REQUIRE(waitFor([&] { return eu.get("/eu-only") == 200; }, 20s));
  CHECK(eu.get("/two") == 404);
  CHECK(dp.get("/eu-only") == 404);
  CHECK(cp.committedGeneration() == first + 1);

  // GET /config posted back: the same config, no new generation for the DPs.
  HttpResponse exported = cp.admin("GET", "/config");
  REQUIRE(exported.status == 200);
  CHECK(cp.admin("POST", "/config?check_hash=1", exported.body).status == 304);
  CHECK(cp.committedGeneration() == first + 1);
}

}  // namespace
