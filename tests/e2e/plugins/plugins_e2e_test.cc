// Fail-closed plugins with the real portico-cp, portico-dp and PostgreSQL: a route protected by
// key-auth never answers a request without a valid key, whatever happens to the config, the
// CP or the DP; and a DP that lacks a plugin its group uses is listed as
// plugin_set_incompatible and keeps serving its last good config. And the prometheus plugin as
// an operator meets it: a real Prometheus server (the Debian package) scrapes the DP. And
// proxy-cache purges through the CP's Admin API reach every DP of the group.
#include <atomic>
#include <cctype>
#include <cstdio>
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

// A service on the echo upstream, route /demo, key-auth on it, consumer bob with key "k1".
void protectDemo(Cp& cp, int upstream_port) {
  cp.adminOk("POST", "/services",
          {{"name", "svc"}, {"url", "http://127.0.0.1:" + std::to_string(upstream_port)}}, 201);
  cp.adminOk("POST", "/services/svc/routes", {{"name", "demo"}, {"paths", {"/demo"}}}, 201);
  cp.adminOk("POST", "/routes/demo/plugins", {{"name", "key-auth"}}, 201);
  cp.adminOk("POST", "/consumers", {{"username", "bob"}}, 201);
  cp.adminOk("POST", "/consumers/bob/key-auth", {{"key", "k1"}}, 201);
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
    cp.adminOk("POST", "/consumers", {{"username", std::string(name)}}, 201);
    if (i % 10 == 0) {
      cp.adminOk("PATCH", "/routes/demo", {{"paths", {"/demo", "/demo2"}}}, 200);
    }
  }
  REQUIRE(waitFor([&] { return dp.generation() >= cp.generation() && cp.generation() > 0; }, 20s));
  // The CP dies and comes back while requests keep coming.
  cp.kill9();
  std::this_thread::sleep_for(1s);
  cp.start();
  cp.adminOk("POST", "/consumers", {{"username", "after-restart"}}, 201);
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
  cp.adminOk("POST", "/services/svc/routes", {{"name", "after"}, {"paths", {"/after"}}}, 201);

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
  cp.adminOk("DELETE", "/plugins/" + fake_id, json::object(), 204);
  REQUIRE(waitFor([&] { return proxyGet(dp, "/after", "k1").status == 200; }, 20s));
  CHECK(waitFor([&] { return nodeStatus().value("sync_status", "") == "normal"; }, 10s));
  CHECK(proxyGet(dp, "/after").status == 200);  // key-auth is on route demo only
}

TEST_CASE("e2e plugins: a proxy-cache purge on the CP reaches every DP of the group") {
  EchoUpstream upstream(0, /*record=*/false);
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  TempDir cache;
  Dp dp1(cp.cluster_port, cache.path + "/dp1.cache");
  Dp dp2(cp.cluster_port, cache.path + "/dp2.cache");
  cp.adminOk("POST", "/services",
          {{"name", "svc"}, {"url", "http://127.0.0.1:" + std::to_string(upstream.port())}}, 201);
  cp.adminOk("POST", "/services/svc/routes", {{"name", "cached"}, {"paths", {"/cached"}}}, 201);
  HttpResponse plugin = cp.admin("POST", "/routes/cached/plugins",
                                 json{{"name", "proxy-cache"},
                                      {"config", {{"strategy", "memory"}}}}.dump());
  REQUIRE(plugin.status == 201);
  const std::string plugin_id = json::parse(plugin.body)["id"];
  for (Dp* dp : {&dp1, &dp2}) {
    REQUIRE(waitFor([&] { return proxyGet(*dp, "/cached/a").status == 200; }, 20s));
  }
  auto status = [](Dp& dp, const std::string& path) {
    return proxyGet(dp, path).headers["x-cache-status"];
  };
  // Warm both DPs (each has its own cache), then purge one key through the CP.
  for (Dp* dp : {&dp1, &dp2}) {
    REQUIRE(waitFor([&] { return status(*dp, "/cached/a") == "Hit"; }, 5s));
  }
  const std::string key = proxyGet(dp1, "/cached/a").headers["x-cache-key"];
  REQUIRE(key.size() == 64);
  HttpResponse entry = cp.admin("GET", "/proxy-cache/" + key);
  CHECK(entry.status == 200);
  json e = json::parse(entry.body, nullptr, false);
  CHECK(e.value("status", 0) == 200);
  CHECK(e.value("body_len", 0) > 0);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(cp.admin("DELETE", "/proxy-cache/" + key).status == 204);
  const auto purge_us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - t0).count();
  std::printf("proxy-cache: DELETE /proxy-cache/{key} answered by both DPs in %lld us\n",
              static_cast<long long>(purge_us));
  CHECK(purge_us < 1000000);  // the CP waits at most 1 s for its DPs
  // Gone on both as soon as the CP answered.
  CHECK(status(dp1, "/cached/a") == "Miss");
  CHECK(status(dp2, "/cached/a") == "Miss");
  CHECK(cp.admin("GET", "/proxy-cache/" + key).status == 200);  // cached again
  // By plugin: the plugin must exist and be a proxy-cache.
  CHECK(cp.admin("DELETE", "/proxy-cache/" + plugin_id + "/caches/" + key).status == 204);
  CHECK(cp.admin("DELETE", "/proxy-cache/" + plugin_id + "/caches/" + key).status == 404);
  CHECK(cp.admin("GET", "/proxy-cache/" + plugin_id + "/caches/" + key).status == 404);
  CHECK(cp.admin("DELETE", "/proxy-cache/5f0b7a49-8f3e-4c7b-9d1a-1b2c3d4e5f61/caches/" + key)
            .status == 404);
  // Everything, on every DP.
  for (Dp* dp : {&dp1, &dp2}) {
    REQUIRE(waitFor([&] { return status(*dp, "/cached/b") == "Hit"; }, 5s));
  }
  CHECK(cp.admin("DELETE", "/proxy-cache").status == 204);
  CHECK(status(dp1, "/cached/b") == "Miss");
  CHECK(status(dp2, "/cached/b") == "Miss");
  CHECK(cp.admin("POST", "/proxy-cache").status == 405);
}

// The README's "Routing older clients to the older version", step by step through the CP's
// Admin API to a real DP: a header-matched route pins v1 clients to v1 while the canary
// plugin moves everyone else from v1 to v2, per consumer, and X-Canary overrides it.
TEST_CASE("e2e plugins: older clients stay on the older version while canary moves the rest") {
  EchoUpstream v1(0, /*record=*/false);
  EchoUpstream v2(0, /*record=*/false);
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  TempDir cache;
  Dp dp(cp.cluster_port, cache.path + "/dp.cache");
  const std::string v1_url = "http://127.0.0.1:" + std::to_string(v1.port());
  cp.adminOk("POST", "/services", {{"name", "orders"}, {"url", v1_url}}, 201);
  cp.adminOk("POST", "/services/orders/routes", {{"name", "orders"}, {"paths", {"/orders"}}},
          201);
  cp.adminOk("POST", "/services", {{"name", "orders-v1"}, {"url", v1_url}}, 201);
  cp.adminOk("POST", "/services/orders-v1/routes",
          {{"name", "orders-v1-clients"},
           {"paths", {"/orders"}},
           {"headers", {{"X-Api-Version", {"~*^1(\\.|$)"}}}}},
          201);
  cp.adminOk("POST", "/routes/orders/plugins", {{"name", "key-auth"}}, 201);
  cp.adminOk("POST", "/routes/orders-v1-clients/plugins", {{"name", "key-auth"}}, 201);
  std::vector<std::string> keys;
  for (int i = 0; i < 40; ++i) {
    const std::string name = "client" + std::to_string(i);
    cp.adminOk("POST", "/consumers", {{"username", name}}, 201);
    cp.adminOk("POST", "/consumers/" + name + "/key-auth", {{"key", name + "-key"}}, 201);
    keys.push_back(name + "-key");
  }
  HttpResponse plugin = cp.admin(
      "POST", "/routes/orders/plugins",
      json{{"name", "canary"},
           {"config",
            {{"upstream_host", "127.0.0.1"}, {"upstream_port", v2.port()}, {"percentage", 10},
             {"hash", "consumer"}, {"canary_by_header_name", "X-Canary"}}}}.dump());
  INFO(plugin.body);
  REQUIRE(plugin.status == 201);
  const std::string plugin_id = json::parse(plugin.body)["id"];
  REQUIRE(waitFor([&] { return dp.generation() >= cp.committedGeneration(); }, 20s));

  // Which version answered (the echo reports the Host it was sent: each version its port).
  const std::string v2_host = "127.0.0.1:" + std::to_string(v2.port());
  auto version = [&](const std::string& key, const std::string& api_version = "",
                     const std::string& canary = "") -> int {
    std::map<std::string, std::string> headers{{"apikey", key}};
    if (!api_version.empty()) headers["X-Api-Version"] = api_version;
    if (!canary.empty()) headers["X-Canary"] = canary;
    HttpResponse r = httpRequest("127.0.0.1", dp.proxy_port, "GET", "/orders/42", "", headers);
    if (r.status != 200) return -r.status;
    json echo = json::parse(r.body, nullptr, false);
    return echo["headers"].value("host", "") == v2_host ? 2 : 1;
  };
  auto onV2 = [&] {
    int n = 0;
    for (const std::string& k : keys) n += version(k) == 2 ? 1 : 0;
    return n;
  };
  // 10%: some consumers on v2, most on v1, each one always on the same side.
  const int at10 = onV2();
  std::vector<std::string> moved_at10;
  for (const std::string& k : keys) {
    if (version(k) == 2) moved_at10.push_back(k);
  }
  std::printf("canary 10%%: %d of 40 consumers on v2\n", at10);
  CHECK(at10 < 40);
  for (const std::string& k : keys) {
    const int first = version(k);
    CHECK(version(k) == first);
  }
  // Old clients stay on v1 whatever the rollout and whatever they ask for.
  for (const std::string& k : keys) {
    CHECK(version(k, "1") == 1);
    CHECK(version(k, "1.4.2", "always") == 1);
  }
  // Testers pick a side.
  CHECK(version(keys[0], "", "always") == 2);
  CHECK(version(keys[0], "", "never") == 1);
  CHECK(version(keys[0], "2") != -404);  // a v2 client is not caught by the v1 route

  // Raise the share: everyone who was on v2 stays there.
  cp.adminOk("PATCH", "/plugins/" + plugin_id, {{"config", {{"percentage", 50}}}}, 200);
  REQUIRE(waitFor([&] { return dp.generation() >= cp.committedGeneration(); }, 20s));
  const int at50 = onV2();
  std::printf("canary 50%%: %d of 40 consumers on v2\n", at50);
  CHECK(at50 >= at10);
  CHECK(at50 > 0);
  for (const std::string& k : moved_at10) CHECK(version(k) == 2);  // nobody moved back
  // Done: 100%, then the service points at v2 and the plugin goes; v1 clients still on v1.
  cp.adminOk("PATCH", "/plugins/" + plugin_id, {{"config", {{"percentage", 100}}}}, 200);
  REQUIRE(waitFor([&] { return dp.generation() >= cp.committedGeneration(); }, 20s));
  CHECK(onV2() == 40);
  cp.adminOk("PATCH", "/services/orders",
          {{"url", "http://127.0.0.1:" + std::to_string(v2.port())}}, 200);
  CHECK(cp.admin("DELETE", "/plugins/" + plugin_id).status == 204);
  REQUIRE(waitFor([&] { return dp.generation() >= cp.committedGeneration(); }, 20s));
  CHECK(onV2() == 40);
  CHECK(version(keys[3], "1") == 1);
  CHECK(version("no-such-key", "1") == -401);  // the pinned route is still protected
}

TEST_CASE("e2e plugins: a real Prometheus server scrapes a DP's /metrics (prometheus plugin)") {
  if (!PrometheusServer::available()) {
    WARN("prometheus/promtool not installed (Debian package prometheus): skipped");
    return;
  }
  EchoUpstream upstream(0, /*record=*/false);
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  TempDir dir;
  Dp dp(cp.cluster_port, dir.path + "/dp.cache");
  cp.adminOk("POST", "/services",
          {{"name", "pm-e2e-svc"}, {"url", "http://127.0.0.1:" + std::to_string(upstream.port())}},
          201);
  cp.adminOk("POST", "/services/pm-e2e-svc/routes", {{"name", "pm-e2e"}, {"paths", {"/pm"}}},
          201);
  cp.adminOk("POST", "/plugins",
          {{"name", "prometheus"},
           {"config", {{"status_code_metrics", true}, {"latency_metrics", true},
                       {"bandwidth_metrics", true}, {"per_consumer", true}}}},
          201);
  // Requests before the config arrives get the router's 404 and are not counted.
  REQUIRE(waitFor([&] { return proxyGet(dp, "/pm/x").status == 200; }, 20s));
  for (int i = 1; i < 25; ++i) {
    REQUIRE(proxyGet(dp, "/pm/x").status == 200);
  }
  for (int i = 0; i < 5; ++i) {
    REQUIRE(proxyGet(dp, "/pm/status/503").status == 503);
  }
  const std::string series =
      "kong_http_requests_total{service=\"pm-e2e-svc\",route=\"pm-e2e\",code=\"200\","
      "source=\"service\",workspace=\"default\",consumer=\"\"} 25";
  HttpResponse metrics;
  REQUIRE(waitFor([&] {
    metrics = httpRequest("127.0.0.1", dp.status_port, "GET", "/metrics");
    return metrics.body.find(series) != std::string::npos;
  }, 10s));
  CHECK(metrics.body.find("\nkong_control_plane_connected 1\n") != std::string::npos);

  // promtool: the body parses; its only findings are the naming lints on Kong's own names.
  {
    std::ofstream(dir.path + "/metrics.txt") << metrics.body;
    const int status = std::system(("promtool check metrics < " + dir.path +
                                    "/metrics.txt > " + dir.path + "/promtool.txt 2>&1")
                                       .c_str());
    std::ifstream in(dir.path + "/promtool.txt");
    std::string line, out;
    int findings = 0;
    while (std::getline(in, line)) {
      out += line + "\n";
      if (!line.empty() && line.rfind("kong_", 0) == 0 &&
          (line.find("should have \"_total\" suffix") != std::string::npos ||
           line.find("should not have \"_total\" suffix") != std::string::npos ||
           line.find("should not contain abbreviated units") != std::string::npos)) {
        continue;
      }
      if (!line.empty()) ++findings;
    }
    INFO(out);
    CHECK(findings == 0);
    CHECK(WEXITSTATUS(status) != 1);  // 1: the text did not parse
  }

  // The server: scrapes the DP's status listener every second into a temporary TSDB.
  PrometheusServer prom(
      "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      "scrape_configs:\n  - job_name: portico-dp\n    static_configs:\n"
      "      - targets: ['127.0.0.1:" + std::to_string(dp.status_port) + "']\n",
      dir);
  auto query = [&](const std::string& promql) { return prom.query(promql); };
  auto scalar = [&](const std::string& promql) { return prom.scalar(promql); };
  INFO("prometheus log:\n" << prom.log());
  REQUIRE(waitFor([&] { return scalar("up{job=\"portico-dp\"}") == "1"; }, 30s));
  REQUIRE(waitFor([&] {
    return scalar("kong_http_requests_total{route=\"pm-e2e\",code=\"200\"}") == "25";
  }, 15s));
  json result = query("kong_http_requests_total{route=\"pm-e2e\",code=\"200\"}");
  REQUIRE(result.size() == 1);
  // Prometheus stores an empty label value as no label: consumer="" is absent here.
  const json& labels = result[0]["metric"];
  CHECK(labels == json({{"__name__", "kong_http_requests_total"},
                        {"service", "pm-e2e-svc"},
                        {"route", "pm-e2e"},
                        {"code", "200"},
                        {"source", "service"},
                        {"workspace", "default"},
                        {"instance", "127.0.0.1:" + std::to_string(dp.status_port)},
                        {"job", "portico-dp"}}));
  CHECK(scalar("kong_http_requests_total{route=\"pm-e2e\",code=\"503\"}") == "5");
  CHECK(scalar("sum(kong_request_latency_ms_count{route=\"pm-e2e\"})") == "30");
  CHECK(scalar("sum(kong_bandwidth_bytes{route=\"pm-e2e\",direction=\"ingress\"}) > 0") !=
        "");
  CHECK(scalar("kong_control_plane_connected") == "1");
  // A Kong Grafana dashboard query evaluates (a number once two scrapes are in).
  CHECK(waitFor([&] {
    const std::string v = scalar(
        "histogram_quantile(0.95, sum(rate(kong_request_latency_ms_bucket{instance=~\".*\"}"
        "[1m])) by (le))");
    return !v.empty();
  }, 15s));

  // The control plane goes away: the DP says so.
  cp.kill9();
  CHECK(waitFor([&] {
    return httpRequest("127.0.0.1", dp.status_port, "GET", "/metrics")
               .body.find("\nkong_control_plane_connected 0\n") != std::string::npos;
  }, 15s));
}

}  // namespace
