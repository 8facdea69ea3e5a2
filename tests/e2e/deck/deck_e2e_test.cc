// decK as Kong users run it, against a real portico-cp and PostgreSQL: Debian's `deck`
// (1.4.0) pings, validates, syncs, diffs, dumps and resets our own state file (every entity
// kind), and Kong's burst.yml spec fixture (236 services, 286 routes, upstreams, targets and
// plugins) when ../shared/fixtures is there. decK 1.4 predates Kong 3.x, so its
// diff after a sync lists Kong 3.x fields it has no default for; the test pins that list (the
// README's decK section documents it), so any other drift fails.
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/e2e_cluster.h"
#include "tests/support/test_support.h"

namespace {

using namespace std::chrono_literals;
using namespace portico::testing;
using nlohmann::json;

struct Run {
  int status = -1;
  std::string out;
};

Run deck(const Cp& cp, std::vector<std::string> args) {
  args.push_back("--kong-addr");
  args.push_back("http://127.0.0.1:" + std::to_string(cp.admin_port));
  Process p("/usr/bin/deck", args);
  Run r;
  r.status = p.wait(300s);
  r.out = p.log();
  return r;
}

// decK reaches the CP and takes it for the Kong release whose Admin API it follows.
void checkPing(const Cp& cp) {
  Run ping = deck(cp, {"ping"});
  INFO(ping.out);
  CHECK(ping.status == 0);
  CHECK(ping.out.find("Kong version:  3.10.0") != std::string::npos);
}

size_t total(Cp& cp, const std::string& collection) {
  size_t n = 0;
  std::string next = "/" + collection + "?size=1000";
  while (!next.empty()) {
    json page = json::parse(cp.admin("GET", next).body, nullptr, false);
    if (!page.is_object()) return 0;
    n += page["data"].size();
    next = page.contains("next") && page["next"].is_string() ? page["next"].get<std::string>()
                                                             : "";
  }
  return n;
}

// The project's own state file (tests/e2e/deck/kong.yaml): runs everywhere, fixtures or not.
TEST_CASE("e2e decK 1.4: sync, diff, dump and reset of a state file with every entity kind") {
  if (!std::filesystem::exists("/usr/bin/deck")) {
    WARN("deck (Debian package deck) is missing: skipped");
    return;
  }
  const std::string state = std::string(PORTICO_DECK_DIR) + "/kong.yaml";
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());

  checkPing(cp);
  CHECK(deck(cp, {"validate", "-s", state}).status == 0);

  Run sync = deck(cp, {"sync", "-s", state});
  INFO(sync.out);
  REQUIRE(sync.status == 0);
  CHECK(sync.out.find("Created: 17") != std::string::npos);
  // What decK created is what the file says.
  json route = json::parse(cp.admin("GET", "/routes/orders-v1-clients").body, nullptr, false);
  CHECK(route["headers"] == json{{"x-api-version", {"1"}}});
  json orders = json::parse(cp.admin("GET", "/services/orders").body, nullptr, false);
  CHECK(orders["path"] == "/v1");
  CHECK(orders["retries"] == 3);
  CHECK(orders["tags"] == json{"team-orders"});
  CHECK(total(cp, "consumers") == 2);
  CHECK(total(cp, "key-auths") == 2);
  CHECK(total(cp, "acls") == 1);
  CHECK(total(cp, "plugins") == 4);
  CHECK(total(cp, "upstreams/users-upstream/targets") == 2);

  // decK 1.4 then reports updates for the Kong 3.x fields it has no defaults for, but never
  // an entity to create or delete, and syncing again changes nothing.
  Run diff = deck(cp, {"diff", "-s", state});
  CHECK(diff.status == 0);
  CHECK(diff.out.find("Created: 0") != std::string::npos);
  CHECK(diff.out.find("Deleted: 0") != std::string::npos);
  CHECK(deck(cp, {"sync", "-s", state}).status == 0);
  CHECK(total(cp, "services") == 2);
  CHECK(total(cp, "routes") == 3);

  TempDir dir;
  Run dump = deck(cp, {"dump", "-o", dir.path + "/dump.yaml"});
  REQUIRE(dump.status == 0);
  std::ifstream in(dir.path + "/dump.yaml");
  std::stringstream text;
  text << in.rdbuf();
  CHECK(text.str().find("name: orders-v1-clients") != std::string::npos);
  CHECK(text.str().find("username: alice") != std::string::npos);
  // The dump syncs back as a no-op: nothing created or deleted.
  Run back = deck(cp, {"diff", "-s", dir.path + "/dump.yaml"});
  CHECK(back.status == 0);
  CHECK(back.out.find("Created: 0") != std::string::npos);
  CHECK(back.out.find("Deleted: 0") != std::string::npos);

  CHECK(deck(cp, {"reset", "--force"}).status == 0);
  CHECK(total(cp, "services") == 0);
  CHECK(total(cp, "consumers") == 0);
  CHECK(total(cp, "upstreams") == 0);
}

TEST_CASE("e2e decK 1.4: ping, validate, sync, diff, dump and reset of Kong's burst.yml") {
  const std::string burst =
      std::string(PORTICO_FIXTURES_DIR) + "/declarative/kong-spec-fixtures-burst.yml";
  if (!std::filesystem::exists("/usr/bin/deck") || !std::filesystem::exists(burst)) {
    WARN("deck (Debian package deck) or ../shared/fixtures/declarative is missing: skipped");
    return;
  }
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());

  checkPing(cp);

  Run validate = deck(cp, {"validate", "-s", burst});
  INFO(validate.out);
  CHECK(validate.status == 0);

  const auto t0 = std::chrono::steady_clock::now();
  Run sync = deck(cp, {"sync", "-s", burst});
  const double sync_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(sync.out.substr(sync.out.size() > 4000 ? sync.out.size() - 4000 : 0));
  REQUIRE(sync.status == 0);
  CHECK(sync.out.find("Created: 1090") != std::string::npos);
  std::printf("deck sync of burst.yml into an empty CP: %.2f s\n", sync_s);
  CHECK(total(cp, "services") == 236);
  CHECK(total(cp, "routes") == 286);

  // What decK 1.4 reports right after: only Kong 3.x fields it has no defaults for (and the
  // timestamps it prints beside them).
  Run diff = deck(cp, {"diff", "-s", burst});
  REQUIRE(diff.status == 0);
  const std::set<std::string> known = {
      "created_at",  "updated_at",  "request_buffering", "response_buffering",
      "path_handling", "threshold", "type",              "status",
      "message",     "config",      "ai_metrics",        "bandwidth_metrics",
      "latency_metrics", "per_consumer", "status_code_metrics", "upstream_health_metrics",
      "wasm_metrics"};
  std::set<std::string> unexpected;
  size_t updates = 0;
  std::istringstream lines(diff.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("updating ", 0) == 0) ++updates;
    if (line.rfind("creating ", 0) == 0 || line.rfind("deleting ", 0) == 0) {
      unexpected.insert(line);
    }
    if ((line[0] == '-' || line[0] == '+') && line.find('"') != std::string::npos) {
      const size_t a = line.find('"');
      const size_t b = line.find('"', a + 1);
      const std::string key = line.substr(a + 1, b - a - 1);
      if (!known.contains(key)) unexpected.insert(line);
    }
  }
  std::printf("deck diff after sync: %zu updates, all in decK 1.4's missing Kong 3.x defaults\n",
              updates);
  INFO(diff.out.substr(0, 3000));
  CHECK(unexpected.empty());
  CHECK(diff.out.find("Created: 0") != std::string::npos);
  CHECK(diff.out.find("Deleted: 0") != std::string::npos);

  // A second sync writes those fields back as they are: nothing changes in the database.
  const uint64_t services_before = total(cp, "services");
  Run again = deck(cp, {"sync", "-s", burst});
  CHECK(again.status == 0);
  CHECK(total(cp, "services") == services_before);

  TempDir dir;
  Run dump = deck(cp, {"dump", "-o", dir.path + "/dump.yaml"});
  INFO(dump.out);
  REQUIRE(dump.status == 0);
  std::ifstream in(dir.path + "/dump.yaml");
  std::stringstream text;
  text << in.rdbuf();
  size_t services = 0;
  for (size_t at = 0; (at = text.str().find("\n- connect_timeout:", at)) != std::string::npos; ++at) {
    ++services;
  }
  CHECK(services == 236);

  Run reset = deck(cp, {"reset", "--force"});
  INFO(reset.out);
  CHECK(reset.status == 0);
  CHECK(total(cp, "services") == 0);
  CHECK(total(cp, "routes") == 0);
  CHECK(total(cp, "upstreams") == 0);
}

}  // namespace
