// What an SRE installs from deploy/: a real Prometheus server (Debian's) loads
// deploy/prometheus/portico-rules.yml and scrapes a control plane and two data planes as
// deploy/prometheus/prometheus.yml does; the CP's fleet and sync families carry the truth
// (generations, commit-to-ACK propagation, Admin API latency), the rules load and stay quiet
// on a healthy fleet, and every query of every deploy/grafana dashboard evaluates, the core
// panels to data.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
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

// Every `expr` of a dashboard's panels, with Grafana's variables given what Grafana would
// substitute ($__rate_interval: a window that holds several 1 s scrapes; "All": ".*").
std::vector<std::pair<std::string, std::string>> dashboardQueries(const json& dashboard) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const json& panel : dashboard["panels"]) {
    for (const json& target : panel["targets"]) {
      std::string expr = target["expr"];
      for (const auto& [var, value] :
           {std::pair<std::string, std::string>{"$__rate_interval", "15s"},
            {"$cp_job", ".*"}, {"$dp_job", ".*"}, {"$service", ".*"}}) {
        for (size_t at; (at = expr.find(var)) != std::string::npos;) {
          expr.replace(at, var.size(), value);
        }
      }
      out.emplace_back(panel["title"].get<std::string>(), expr);
    }
  }
  return out;
}

TEST_CASE("e2e deploy: Prometheus with the shipped rules scrapes a CP and two DPs; every "
          "Grafana dashboard query evaluates") {
  if (!PrometheusServer::available()) {
    WARN("prometheus/promtool not installed (Debian package prometheus): skipped");
    return;
  }
  EchoUpstream upstream(0, /*record=*/false);
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  TempDir dir;
  Dp dp1(cp.cluster_port, dir.path + "/dp1.cache");
  Dp dp2(cp.cluster_port, dir.path + "/dp2.cache");
  cp.adminOk("POST", "/services",
          {{"name", "orders"}, {"url", "http://127.0.0.1:" + std::to_string(upstream.port())}},
          201);
  cp.adminOk("POST", "/services/orders/routes", {{"name", "orders"}, {"paths", {"/orders"}}},
          201);
  cp.adminOk("POST", "/plugins",
             {{"name", "prometheus"},
              {"config", {{"status_code_metrics", true}, {"latency_metrics", true},
                          {"bandwidth_metrics", true}, {"upstream_health_metrics", true}}}},
             201);
  for (Dp* dp : {&dp1, &dp2}) {
    REQUIRE(waitFor([&] { return dp->get("/orders/x") == 200; }, 20s));
  }

  // The shipped scrape config's jobs, pointed at this cluster, every second.
  std::filesystem::copy_file(std::string(PORTICO_DEPLOY_DIR) + "/prometheus/portico-rules.yml",
                             dir.path + "/portico-rules.yml");
  PrometheusServer prom(
      "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      "rule_files:\n  - portico-rules.yml\n"
      "scrape_configs:\n"
      "  - job_name: portico-cp\n    static_configs:\n      - targets: ['127.0.0.1:" +
          std::to_string(cp.admin_port) + "']\n"
      "  - job_name: portico-dp\n    static_configs:\n      - targets: ['127.0.0.1:" +
          std::to_string(dp1.status_port) + "', '127.0.0.1:" + std::to_string(dp2.status_port) +
          "']\n",
      dir);
  INFO("prometheus log:\n" << prom.log());
  REQUIRE(waitFor([&] { return prom.scalar("sum(up{job=\"portico-cp\"})") == "1"; }, 30s));
  REQUIRE(waitFor([&] { return prom.scalar("sum(up{job=\"portico-dp\"})") == "2"; }, 30s));

  // Traffic on both DPs and config changes (each one acked by both DPs) while it scrapes.
  for (int round = 0; round < 5; ++round) {
    for (Dp* dp : {&dp1, &dp2}) {
      for (int i = 0; i < 10; ++i) CHECK(dp->get("/orders/x") == 200);
      CHECK(dp->get("/orders/status/503") == 503);
    }
    cp.adminOk("PATCH", "/routes/orders",
            {{"paths", {"/orders", "/orders-" + std::to_string(round)}}}, 200);
    const uint64_t want = cp.committedGeneration();
    REQUIRE(waitFor([&] { return dp1.generation() >= want && dp2.generation() >= want; }, 20s));
    std::this_thread::sleep_for(1s);
  }
  const uint64_t generation = cp.committedGeneration();

  // Fleet truth on the CP: both DPs connected and current.
  REQUIRE(waitFor([&] {
    return prom.scalar("max(portico_cp_config_generation{group=\"default\"})") ==
               std::to_string(generation) &&
           prom.scalar("count(portico_cp_data_plane_generation{group=\"default\"} == " +
                       std::to_string(generation) + ")") == "2";
  }, 15s));
  CHECK(prom.scalar("sum(portico_cp_data_planes{sync_status=\"normal\",connected=\"true\"})") ==
        "2");
  // Commit to ACK: at least the 5 PATCHes times 2 DPs, each well under a second here.
  REQUIRE(waitFor([&] {
    const std::string n = prom.scalar("sum(portico_cp_config_propagation_seconds_count)");
    return !n.empty() && std::stod(n) >= 10;
  }, 15s));
  CHECK(prom.scalar("sum(portico_cp_config_propagation_seconds_bucket{le=\"1\"}) / "
                    "sum(portico_cp_config_propagation_seconds_count)") == "1");
  CHECK(std::stod(prom.scalar("sum(portico_cp_admin_request_duration_seconds_count{"
                              "method=\"PATCH\",status=\"2xx\"})")) >= 5);
  CHECK(prom.scalar("kong_datastore_reachable{job=\"portico-cp\"}") == "1");
  const std::string pool_size = prom.scalar("portico_cp_pg_pool_size");
  REQUIRE(!pool_size.empty());
  CHECK(std::stod(pool_size) >= 3);  // one per Admin worker, plus two
  CHECK(prom.scalar("sum(portico_cp_pg_pool_connections)") != "");
  // Traffic from both DPs under Kong's names.
  REQUIRE(waitFor([&] {
    return prom.scalar("sum(kong_http_requests_total{service=\"orders\",code=\"200\"})") ==
           std::to_string(2 * (5 * 10 + 1));
  }, 15s));
  CHECK(prom.scalar("sum(kong_http_requests_total{service=\"orders\",code=\"503\"})") == "10");

  // The CP's /metrics passes promtool's lint (Kong's own names aside, as on the DP).
  {
    std::ofstream(dir.path + "/cp-metrics.txt") << cp.admin("GET", "/metrics").body;
    const int status = std::system(("promtool check metrics < " + dir.path +
                                    "/cp-metrics.txt > " + dir.path + "/promtool.txt 2>&1")
                                       .c_str());
    std::ifstream in(dir.path + "/promtool.txt");
    std::string line, findings;
    while (std::getline(in, line)) {
      if (!line.empty() && line.rfind("kong_", 0) != 0) findings += line + "\n";
    }
    INFO(findings);
    CHECK(findings.empty());
    CHECK(WEXITSTATUS(status) != 1);  // 1: the text did not parse
  }

  // The shipped rules loaded, healthy, and nothing fires on this healthy fleet.
  json rules = prom.api("rules");
  REQUIRE(rules.value("status", "") == "success");
  std::set<std::string> alerts;
  for (const json& group : rules["data"]["groups"]) {
    for (const json& rule : group["rules"]) {
      INFO(rule.dump());
      CHECK(rule.value("health", "") == "ok");
      alerts.insert(rule.value("name", ""));
    }
  }
  CHECK(alerts == std::set<std::string>{"PorticoControlPlaneDatabaseDown",
                                        "PorticoConfigRejected", "PorticoDataPlaneNotCurrent",
                                        "PorticoService5xxRatioHigh",
                                        "PorticoServiceLatencyP99High",
                                        "PorticoVitalsIngestLagging"});
  CHECK(prom.query("ALERTS{alertname=\"PorticoDataPlaneNotCurrent\"}").empty());
  CHECK(prom.query("ALERTS{alertname=\"PorticoControlPlaneDatabaseDown\"}").empty());
  // 1 in 11 answers is a 503 here: the 5xx rule's expression sees it (pending, 5 min to fire).
  REQUIRE(waitFor([&] {
    return !prom.query("ALERTS{alertname=\"PorticoService5xxRatioHigh\",service=\"orders\"}")
                .empty();
  }, 20s));

  // Every dashboard query is valid PromQL over these series; the core panels have data.
  const std::set<std::string> must_have_data = {
      "Data planes by sync status", "Config generation per group and data plane",
      "Data planes connected to a control plane", "Requests per second by service",
      "5xx ratio by service", "Commit to data-plane ACK, p50 / p99",
      "Admin API requests per second by method and status", "PostgreSQL reachable",
      "PostgreSQL pool: connections and waiters"};
  std::set<std::string> seen_with_data;
  int queries = 0;
  for (const char* name : {"portico-fleet", "portico-traffic", "portico-sync"}) {
    std::ifstream in(std::string(PORTICO_DEPLOY_DIR) + "/grafana/" + name + ".json");
    json dashboard = json::parse(in, nullptr, false);
    REQUIRE(dashboard.is_object());
    CHECK(dashboard["uid"] == name);
    for (const auto& [title, expr] : dashboardQueries(dashboard)) {
      INFO(name << " / " << title << ": " << expr);
      json r = prom.instant(expr);
      CHECK(r.value("status", "") == "success");
      ++queries;
      if (r.value("status", "") == "success" && !r["data"]["result"].empty()) {
        seen_with_data.insert(title);
      }
    }
  }
  std::printf("grafana: %d dashboard queries evaluated, %zu panels with data\n", queries,
              seen_with_data.size());
  for (const std::string& title : must_have_data) {
    INFO(title);
    CHECK(seen_with_data.count(title) == 1);
  }
}

}  // namespace
