// Fail-closed plugins with the real portico-cp, portico-dp and PostgreSQL: a route protected by
// key-auth never answers a request without a valid key, whatever happens to the config, the
// CP or the DP; and a DP that lacks a plugin its group uses is listed as
// plugin_set_incompatible and keeps serving its last good config.
#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/e2e_cluster.h"
#include "tests/support/test_support.h"

namespace {

using namespace std::chrono_literals;
using namespace portico::testing;
using nlohmann::json;

HttpResponse proxyGet(const Dp& dp, const std::string& path, const std::string& key = "") {
  std::map<std::string, std::string> headers;
  if (!key.empty()) {
    headers["apikey"] = key;
  }
  return httpRequest("127.0.0.1", dp.proxy_port, "GET", path, "", headers);
}

void adminOk(Cp& cp, const std::string& method, const std::string& path, const json& body,
             int want) {
  HttpResponse r = cp.admin(method, path, body.dump());
  INFO(method << " " << path << " -> " << r.status << " " << r.body);
  REQUIRE(r.status == want);
}

// A service on the echo upstream, route /demo, key-auth on it, consumer bob with key "k1".
void protectDemo(Cp& cp, int upstream_port) {
  adminOk(cp, "POST", "/services",
          {{"name", "svc"}, {"url", "http://127.0.0.1:" + std::to_string(upstream_port)}}, 201);
  adminOk(cp, "POST", "/services/svc/routes", {{"name", "demo"}, {"paths", {"/demo"}}}, 201);
  adminOk(cp, "POST", "/routes/demo/plugins", {{"name", "key-auth"}}, 201);
  adminOk(cp, "POST", "/consumers", {{"username", "bob"}}, 201);
  adminOk(cp, "POST", "/consumers/bob/key-auth", {{"key", "k1"}}, 201);
}

// Clients hammering /demo without a key (and with a wrong one) and with the good key; any 200
// to a request without a valid key is a fail-open.
struct Load {
  Dp& dp;
  std::atomic<bool> stop{false};
  std::atomic<int> unauthorized_ok{0};  // 200s without a valid key: must stay 0
  std::atomic<int> refused{0};          // 401s without a valid key
  std::atomic<int> authorized_ok{0};
  std::vector<std::thread> threads;
  explicit Load(Dp& d) : dp(d) {
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([this, t] {
        for (int i = 0; !stop.load(); ++i) {
          const std::string key = t == 0 ? "" : t == 1 ? "wrong" : "k1";
          HttpResponse r = proxyGet(dp, "/demo/x", key);
          if (key != "k1" && r.status == 200) {
            unauthorized_ok++;
          } else if (key != "k1" && r.status == 401) {
            refused++;
          } else if (key == "k1" && r.status == 200) {
            authorized_ok++;
          }
          std::this_thread::sleep_for(2ms);
        }
      });
    }
  }
  void finish() {
    stop = true;
    for (auto& t : threads) t.join();
  }
};

TEST_CASE("e2e plugins: key-auth never serves without a valid key (config swaps under load, "
          "CP restart, DP restart from its cache)") {
  EchoUpstream upstream(0, /*record=*/false);
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  TempDir cache;
  Dp dp(cp.cluster_port, cache.path + "/dp.cache");
  protectDemo(cp, upstream.port());
  REQUIRE(waitFor([&] { return proxyGet(dp, "/demo/x", "k1").status == 200; }, 20s));
  CHECK(proxyGet(dp, "/demo/x").status == 401);

  Load load(dp);
  // Config swaps under load: 40 generations (consumers, keys, an unrelated route).
  for (int i = 0; i < 40; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "user%d", i);
    adminOk(cp, "POST", "/consumers", {{"username", std::string(name)}}, 201);
    if (i % 10 == 0) {
      adminOk(cp, "PATCH", "/routes/demo", {{"paths", {"/demo", "/demo2"}}}, 200);
    }
  }
  REQUIRE(waitFor([&] { return dp.generation() >= cp.generation() && cp.generation() > 0; }, 20s));
  // The CP dies and comes back while requests keep coming.
  cp.kill9();
  std::this_thread::sleep_for(1s);
  cp.start();
  adminOk(cp, "POST", "/consumers", {{"username", "after-restart"}}, 201);
  std::this_thread::sleep_for(1s);
  load.finish();
  CHECK(load.unauthorized_ok.load() == 0);
  CHECK(load.refused.load() > 100);
  CHECK(load.authorized_ok.load() > 50);

  // The DP restarts from its cache while the CP is down: still closed, and still the same
  // node (its id is kept beside the cache).
  auto nodeId = [&] {
    std::ifstream in(cache.path + "/dp.cache.node_id");
    std::string id;
    std::getline(in, id);
    return id;
  };
  const std::string node_before = nodeId();
  CHECK(node_before.size() == 36);
  cp.kill9();
  dp.kill9();
  dp.start();
  CHECK(nodeId() == node_before);
  REQUIRE(waitFor([&] { return proxyGet(dp, "/demo/x", "k1").status == 200; }, 10s));
  CHECK(proxyGet(dp, "/demo/x").status == 401);
  CHECK(proxyGet(dp, "/demo/x", "wrong").status == 401);
}

TEST_CASE("e2e plugins: a DP lacking a plugin its group uses is plugin_set_incompatible and "
          "keeps its last good config") {
  EchoUpstream upstream(0, /*record=*/false);
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  TempDir cache;
  Dp dp(cp.cluster_port, cache.path + "/dp.cache");
  protectDemo(cp, upstream.port());
  REQUIRE(waitFor([&] { return proxyGet(dp, "/demo/x", "k1").status == 200; }, 20s));

  // A plugin this build does not have, as a newer CP (or a restored database) would hold it.
  const std::string fake_id = "5f0b7a49-8f3e-4c7b-9d1a-1b2c3d4e5f60";
  {
    std::ofstream sql(cache.path + "/made-up.sql");
    sql << "INSERT INTO plugins (group_name, id, entity, created_at, updated_at) "
           "SELECT group_name, '" << fake_id << "', jsonb_set(jsonb_set(entity, '{name}', "
           "'\"made-up\"'), '{id}', '\"" << fake_id << "\"'), created_at, updated_at "
           "FROM plugins WHERE name = 'key-auth';\n";
  }
  REQUIRE(sh("psql -v ON_ERROR_STOP=1 -h 127.0.0.1 -p " + std::to_string(pg.port) +
             " -U postgres -d portico -q -f " + cache.path + "/made-up.sql"));
  cp.kill9();
  cp.start();  // reads the group in full, made-up plugin included
  adminOk(cp, "POST", "/services/svc/routes", {{"name", "after"}, {"paths", {"/after"}}}, 201);

  auto nodeStatus = [&]() -> json {
    HttpResponse r = cp.admin("GET", "/clustering/data-planes");
    json j = json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("data") && !j["data"].empty() ? j["data"][0]
                                                                           : json::object();
  };
  REQUIRE(waitFor([&] { return nodeStatus().value("sync_status", "") ==
                               "plugin_set_incompatible"; }, 20s));
  json node = nodeStatus();
  INFO(node.dump());
  CHECK(node.dump().find("made-up") != std::string::npos);
  // Not sent: the DP serves what it had, key-auth included.
  std::this_thread::sleep_for(1500ms);
  CHECK(proxyGet(dp, "/after", "k1").status == 404);
  CHECK(proxyGet(dp, "/demo/x").status == 401);
  CHECK(proxyGet(dp, "/demo/x", "k1").status == 200);

  // Once the group no longer uses it, the DP converges again.
  adminOk(cp, "DELETE", "/plugins/" + fake_id, json::object(), 204);
  REQUIRE(waitFor([&] { return proxyGet(dp, "/after", "k1").status == 200; }, 20s));
  CHECK(waitFor([&] { return nodeStatus().value("sync_status", "") == "normal"; }, 10s));
  CHECK(proxyGet(dp, "/after").status == 200);  // key-auth is on route demo only
}

}  // namespace
