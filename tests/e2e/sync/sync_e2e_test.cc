// Config sync with the real processes: a private PostgreSQL (deploy/lib.sh, so it can be
// restarted), portico-cp replicas and portico-dp nodes, and an echo upstream. Covers a CP
// killed mid-push, a DP restarted from its cache while the CP is down (timed), a PostgreSQL
// restart, certificate mismatches and two CP replicas sharing one database.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
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

// A service pointing at the echo upstream and a route /<name> to it.
void addRoute(Cp& cp, const std::string& name, int upstream_port) {
  auto s = cp.admin("POST", "/services",
                    json{{"name", "svc-" + name},
                         {"url", "http://127.0.0.1:" + std::to_string(upstream_port)}}
                        .dump());
  INFO(s.body);
  REQUIRE(s.status == 201);
  auto r = cp.admin("POST", "/services/svc-" + name + "/routes",
                    json{{"name", name}, {"paths", {"/" + name}}}.dump());
  INFO(r.body);
  REQUIRE(r.status == 201);
}

TEST_CASE("e2e sync: CP killed mid-push; the DP keeps serving and recovers") {
  EchoUpstream upstream;
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  TempDir cache;
  Dp dp(cp.cluster_port, cache.path + "/dp.cache");
  addRoute(cp, "a", upstream.port());
  REQUIRE(waitFor([&] { return dp.get("/a") == 200; }, 20s));

  // Writes in flight, then SIGKILL: some pushes are cut in the middle.
  std::thread writer([&] {
    for (int i = 0; i < 60; ++i) {
      char name[32];  // not "u" + std::to_string(i): GCC 12's -Wrestrict misfires on it
      std::snprintf(name, sizeof(name), "u%d", i);
      cp.admin("POST", "/consumers", json{{"username", std::string(name)}}.dump());
    }
  });
  std::this_thread::sleep_for(150ms);
  cp.kill9();
  writer.join();
  // The DP serves on, without its CP, across several heartbeat intervals.
  for (int i = 0; i < 10; ++i) {
    CHECK(dp.get("/a") == 200);
    std::this_thread::sleep_for(150ms);
  }
  cp.start();
  addRoute(cp, "b", upstream.port());
  REQUIRE(waitFor([&] { return dp.get("/b") == 200; }, 20s));
  CHECK(dp.get("/a") == 200);
}

TEST_CASE("e2e sync: a DP restarted while the CP is down serves its cache within 1 s") {
  EchoUpstream upstream;
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  TempDir cache;
  Dp dp(cp.cluster_port, cache.path + "/dp.cache");
  addRoute(cp, "cached", upstream.port());
  REQUIRE(waitFor([&] { return dp.get("/cached") == 200; }, 20s));
  const uint64_t generation = dp.generation();

  cp.kill9();
  dp.kill9();
  const auto t0 = std::chrono::steady_clock::now();
  dp.start();
  REQUIRE(waitFor([&] { return dp.get("/cached") == 200; }, 10s));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - t0).count();
  WARN("DP restart -> cached config served: " << ms << " ms (CP down)");
  CHECK(ms <= 1000);
  CHECK(dp.generation() == generation);
}

TEST_CASE("e2e sync: after a PostgreSQL restart the CP pushes later writes") {
  EchoUpstream upstream;
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  TempDir cache;
  Dp dp(cp.cluster_port, cache.path + "/dp.cache");
  addRoute(cp, "before", upstream.port());
  REQUIRE(waitFor([&] { return dp.get("/before") == 200; }, 20s));

  pg.stop();
  std::this_thread::sleep_for(1s);
  CHECK(dp.get("/before") == 200);  // the DP does not care
  REQUIRE(pg.start());
  // The Admin API may fail while its connections come back; then the write goes through.
  REQUIRE(waitFor([&] {
    return cp.admin("POST", "/services",
                    json{{"name", "svc-after"},
                         {"url", "http://127.0.0.1:" + std::to_string(upstream.port())}}
                        .dump())
               .status == 201;
  }, 30s));
  REQUIRE(cp.admin("POST", "/services/svc-after/routes",
                   json{{"name", "after"}, {"paths", {"/after"}}}.dump())
              .status == 201);
  INFO("cp log:\n" << cp.proc->log());
  REQUIRE(waitFor([&] { return dp.get("/after") == 200; }, 30s));
}

TEST_CASE("e2e sync: two CP replicas; a write through one reaches DPs of both") {
  EchoUpstream upstream;
  Postgres pg;
  migrate(pg.dsn());
  Cp cp1(pg.dsn());
  Cp cp2(pg.dsn());
  TempDir cache;
  Dp dp1(cp1.cluster_port, cache.path + "/dp1.cache");
  Dp dp2(cp2.cluster_port, cache.path + "/dp2.cache");
  addRoute(cp1, "one", upstream.port());
  REQUIRE(waitFor([&] { return dp1.get("/one") == 200 && dp2.get("/one") == 200; }, 20s));
  addRoute(cp2, "two", upstream.port());
  REQUIRE(waitFor([&] { return dp1.get("/two") == 200 && dp2.get("/two") == 200; }, 20s));
  CHECK(dp1.generation() == dp2.generation());
  // Each replica lists both DPs (the fleet registry is in PostgreSQL).
  REQUIRE(waitFor([&] {
    auto j = json::parse(cp2.admin("GET", "/clustering/data-planes").body, nullptr, false);
    return j.is_object() && j["data"].size() == 2;
  }, 10s));
}

// A DP joins a named control plane with labels (--control_plane, --dp_labels): the CP lists it
// there with its labels, and the DP's /status shows its link to the CP.
TEST_CASE("e2e sync: a DP joins its control plane with labels and shows its CP link") {
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  HttpResponse created = cp.admin("POST", "/control-planes", R"({"name":"eu"})");
  REQUIRE(created.status == 201);
  const std::string id = nlohmann::json::parse(created.body)["id"];
  TempDir cache;
  Dp dp(cp.cluster_port, cache.path + "/eu.cache",
        {"--cluster_insecure", "--control_plane=eu", "--dp_labels=region:eu-west-1,env:prod"});
  nlohmann::json node;
  REQUIRE(waitFor([&] {
    HttpResponse r = cp.admin("GET", "/control-planes/" + id + "/nodes");
    nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
    // Konnect's shape for a control plane's nodes: {"items": [...]}.
    if (r.status != 200 || !j.is_object() || !j.contains("items") || j["items"].empty()) {
      return false;
    }
    node = j["items"][0];
    return true;
  }, 20s));
  CHECK(node["labels"] == nlohmann::json{{"region", "eu-west-1"}, {"env", "prod"}});
  // Not in the default control plane.
  nlohmann::json def = nlohmann::json::parse(
      cp.admin("GET", "/control-planes/default/nodes").body, nullptr, false);
  CHECK(def["items"].empty());

  const auto before = static_cast<double>(std::time(nullptr));
  nlohmann::json link;
  REQUIRE(waitFor([&] {
    HttpResponse r = httpRequest("127.0.0.1", dp.status_port, "GET", "/status");
    link = nlohmann::json::parse(r.body, nullptr, false).value("control_plane", nlohmann::json());
    return link.is_object() && link.value("connected", false) && link["last_contact"].is_number();
  }, 20s));
  CHECK(link["group"] == "eu");
  CHECK(link["address"] == "127.0.0.1:" + std::to_string(cp.cluster_port));
  CHECK(link["last_contact"].get<double>() > before - 30);

  // Bad labels: one line naming them, exit 1.
  Process bad(binaryPath("portico-dp"), {"--cluster_insecure", "--dp_labels=konnect-x:1",
                                         "--proxy_listen=127.0.0.1:" + std::to_string(freePort()),
                                         "--proxy_ssl_listen=off"});
  CHECK(bad.wait(20s) == 1);
  CHECK(bad.log().find("invalid --dp_labels: label key 'konnect-x' is reserved") !=
        std::string::npos);
}

TEST_CASE("e2e sync: certificate mismatch is refused; missing TLS material is one line") {
  if (!sh("command -v openssl")) {
    WARN("openssl CLI not found; skipping");
    return;
  }
  EchoUpstream upstream;
  Postgres pg;
  migrate(pg.dsn());
  TempDir d;
  for (const std::string name : {"cluster", "other"}) {
    REQUIRE(sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes "
               "-days 2 -keyout " + d.path + "/" + name + ".key -out " + d.path + "/" + name +
               ".crt -subj /CN=portico_clustering -addext subjectAltName=DNS:portico_clustering"));
  }
  const std::string cert = "--cluster_cert=" + d.path + "/cluster.crt";
  const std::string key = "--cluster_key=" + d.path + "/cluster.key";
  Cp cp(pg.dsn(), {"--cluster_mtls=shared", cert, key});
  addRoute(cp, "tls", upstream.port());

  TempDir cache;
  Dp good(cp.cluster_port, cache.path + "/good.cache", {"--cluster_mtls=shared", cert, key});
  REQUIRE(waitFor([&] { return good.get("/tls") == 200; }, 20s));
  // Trusts the CP's certificate, presents another: the CP refuses it and logs why.
  Dp bad(cp.cluster_port, cache.path + "/bad.cache",
         {"--cluster_mtls=pki", "--cluster_ca=" + d.path + "/cluster.crt",
          "--cluster_server_name=portico_clustering",
          "--cluster_cert=" + d.path + "/other.crt", "--cluster_key=" + d.path + "/other.key"});
  REQUIRE(waitFor([&] {
    return cp.proc->log().find("is not the cluster certificate") != std::string::npos;
  }, 20s));
  CHECK(bad.get("/tls") != 200);
  CHECK(bad.generation() == 0);

  // No TLS material and no --cluster_insecure: both binaries exit with one clear line.
  Process cp_bad(binaryPath("portico-cp"),
                 {"--pg_dsn=" + pg.dsn(), "--admin_listen=127.0.0.1:" + std::to_string(freePort()),
                  "--cluster_listen=127.0.0.1:" + std::to_string(freePort())});
  CHECK(cp_bad.wait(20s) == 1);
  CHECK(cp_bad.log().find("--cluster_insecure") != std::string::npos);
  Process dp_bad(binaryPath("portico-dp"),
                 {"--proxy_listen=127.0.0.1:" + std::to_string(freePort()),
                  "--proxy_ssl_listen=off",
                  "--status_listen=127.0.0.1:" + std::to_string(freePort())});
  CHECK(dp_bad.wait(20s) == 1);
  CHECK(dp_bad.log().find("--cluster_insecure") != std::string::npos);
}

}  // namespace

// GET /upstreams/{u}/health on the CP's Admin API reflects what the DPs' balancers report
// (Heartbeat.upstreams): two real upstreams with active health checks, one killed.
TEST_CASE("e2e sync: upstream health reported by the DP reaches the Admin API") {
  auto up_a = std::make_unique<EchoUpstream>();
  auto up_b = std::make_unique<EchoUpstream>();
  const std::string target_a = "127.0.0.1:" + std::to_string(up_a->port());
  const std::string target_b = "127.0.0.1:" + std::to_string(up_b->port());
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());  // heartbeats every 500 ms
  TempDir cache;
  Dp dp(cp.cluster_port, cache.path + "/dp.cache");

  auto u = cp.admin(
      "POST", "/upstreams",
      json{{"name", "up1"},
           {"healthchecks",
            {{"active",
              {{"type", "http"},
               {"http_path", "/"},
               {"timeout", 1},
               {"healthy", {{"interval", 0.2}, {"successes", 1}}},
               {"unhealthy",
                {{"interval", 0.2}, {"http_failures", 1}, {"tcp_failures", 1},
                 {"timeouts", 1}}}}}}}}
          .dump());
  INFO(u.body);
  REQUIRE(u.status == 201);
  for (const std::string& t : {target_a, target_b}) {
    auto r = cp.admin("POST", "/upstreams/up1/targets", json{{"target", t}}.dump());
    INFO(r.body);
    REQUIRE(r.status == 201);
  }
  auto health_of = [&](const std::string& path) {
    std::map<std::string, std::string> out;
    auto r = cp.admin("GET", path);
    auto j = json::parse(r.body, nullptr, false);
    if (r.status == 200 && j.is_object() && j.contains("data")) {
      for (const auto& t : j["data"]) {
        out[t.value("target", "")] = t.value("health", "");
      }
    }
    return out;
  };
  // Both healthy once the DP runs the config and reported (a few heartbeats).
  REQUIRE(waitFor(
      [&] {
        auto h = health_of("/upstreams/up1/health");
        return h[target_a] == "HEALTHY" && h[target_b] == "HEALTHY";
      },
      20s));
  {
    auto r = cp.admin("GET", "/upstreams/up1/health");
    auto j = json::parse(r.body);
    INFO(r.body);
    CHECK(j["total"] == 2);
    REQUIRE(j["nodes"].size() == 1);
    CHECK(j["node_id"] == j["nodes"][0]["node_id"]);
    const auto& t = j["data"][0];
    CHECK(t["weight"] == 100);
    REQUIRE(t["data"]["addresses"].size() == 1);
    CHECK(t["data"]["addresses"][0]["ip"] == "127.0.0.1");
    CHECK(t["data"]["addresses"][0]["health"] == "HEALTHY");
  }
  // The same through the group's path, by name.
  CHECK(health_of("/control-planes/default/upstreams/up1/health").size() == 2);

  // Kill one upstream: UNHEALTHY within a few heartbeats, the other stays HEALTHY.
  const auto killed = std::chrono::steady_clock::now();
  up_b.reset();
  REQUIRE(waitFor(
      [&] {
        auto h = health_of("/upstreams/up1/health");
        return h[target_b] == "UNHEALTHY" && h[target_a] == "HEALTHY";
      },
      10s));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - killed)
                        .count();
  std::printf("upstream health: UNHEALTHY on the Admin API %lld ms after the kill\n",
              static_cast<long long>(took));
  CHECK(took < 5000);  // a few 500 ms heartbeats, plus probes

  CHECK(cp.admin("GET", "/upstreams/nope/health").status == 404);
  CHECK(cp.admin("POST", "/upstreams/up1/health").status == 405);
}
