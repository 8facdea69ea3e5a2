// prometheus: schema (defaults, exact messages), the exact series Kong's exporter writes for
// requests through the real proxy (status codes and source, per_consumer, bandwidth bytes,
// latency histograms, upstream health, the granular switches, connection states), series
// retirement after a route is deleted, the per-worker shards under concurrent writers and a
// scraper, the series cap, and `promtool check metrics` on the whole /metrics body.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "data_plane/plugins/prometheus/exposition.h"
#include "data_plane/plugins/prometheus/series.h"
#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using plugins::prometheus::Live;
using plugins::prometheus::Merged;
using plugins::prometheus::Sample;
using plugins::prometheus::SeriesStore;
using testing::PluginFixture;
using testing::RawClient;
using testing::WireResponse;

const Json kAllOn = {{"status_code_metrics", true},
                     {"latency_metrics", true},
                     {"bandwidth_metrics", true},
                     {"upstream_health_metrics", true}};

// The fixture's service and route renamed (labels are process-wide: every test uses its own
// names) and a global prometheus plugin with `config`.
struct PromFixture : PluginFixture {
  PromFixture(const std::string& name, Json config) : service(name + "-svc"), route(name) {
    this->config().mutable_services(0)->set_name(service);
    this->config().mutable_routes(0)->set_name(route);
    add("plugins", {{"name", "prometheus"}, {"config", std::move(config)}});
    REQUIRE(apply().ToString() == "OK");
  }
  // The labels Kong writes for this fixture's route.
  std::string requests(int code, const std::string& source, const std::string& consumer = "") {
    return "kong_http_requests_total{service=\"" + service + "\",route=\"" + route +
           "\",code=\"" + std::to_string(code) + "\",source=\"" + source +
           "\",workspace=\"default\",consumer=\"" + consumer + "\"}";
  }
  std::string routeLabels() const {
    return "service=\"" + service + "\",route=\"" + route + "\",workspace=\"default\"";
  }
  // The log phase runs after the response is written: scrape until `line` shows up.
  std::string waitFor(const std::string& line) {
    std::string body;
    for (int i = 0; i < 200; ++i) {
      body = metrics();
      if (body.find(line) != std::string::npos) {
        return body;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    INFO(body);
    FAIL("no '" << line << "' in /metrics");
    return body;
  }
  std::string service;  // the labels of the fixture's service and route
  std::string route;
};

bool has(const std::string& body, const std::string& needle) {
  return body.find(needle) != std::string::npos;
}

// The value of the sample line starting with `series` + " ", or -1.
double value(const std::string& body, const std::string& series) {
  const size_t at = body.find(series + " ");
  if (at == std::string::npos || (at > 0 && body[at - 1] != '\n')) {
    return -1;
  }
  return std::stod(body.substr(at + series.size() + 1));
}

// Sends `raw` on a fresh connection and reads everything until the server closes it.
std::string roundTrip(int port, const std::string& raw) {
  RawClient c(port);
  c.send(raw);
  return c.readBytes(1 << 20);
}

TEST_CASE("prometheus schema") {
  Json d = testing::pluginDefaults({{"name", "prometheus"}});
  CHECK(d["config"] == Json({{"per_consumer", false},
                             {"status_code_metrics", false},
                             {"ai_metrics", false},
                             {"latency_metrics", false},
                             {"bandwidth_metrics", false},
                             {"upstream_health_metrics", false},
                             {"wasm_metrics", false}}));
  // Kong's typedefs.protocols: the HTTP set by default, stream protocols accepted.
  CHECK(d["protocols"] == Json({"grpc", "grpcs", "http", "https"}));
  CHECK(testing::pluginSchemaError(
            {{"name", "prometheus"}, {"protocols", {"http", "tcp", "tls", "udp"}}}) == "");
  CHECK(testing::pluginSchemaError(
            {{"name", "prometheus"}, {"config", {{"per_consumer", "yes"}}}}) ==
        "config.per_consumer: expected a boolean");
  CHECK(testing::pluginSchemaError(
            {{"name", "prometheus"}, {"config", {{"latency_metrics", 1}}}}) ==
        "config.latency_metrics: expected a boolean");
  CHECK(testing::pluginSchemaError(
            {{"name", "prometheus"}, {"config", {{"status_codes", true}}}}) ==
        "config.status_codes: unknown field");
  CHECK(testing::pluginSchemaError({{"name", "prometheus"}, {"protocols", {"ws"}}}) ==
        "protocols.1: expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, "
        "udp");
  // Scoped instances are allowed (no no_consumer in Kong's schema).
  CHECK(testing::pluginSchemaError(
            {{"name", "prometheus"},
             {"consumer", {{"id", "5b1a3c1e-0000-4000-8000-000000000001"}}}}) == "");
}

TEST_CASE("prometheus: kong_http_requests_total per code and source, and Kong's node families") {
  PromFixture f("pm-codes", {{"status_code_metrics", true}});
  CHECK(f.get("/x").status == 200);
  CHECK(f.get("/y").status == 200);
  std::string body = f.waitFor(f.requests(200, "service") + " 2");

  // A response of the proxy itself is source="kong": an upstream that refuses connections.
  f.config().mutable_services(0)->set_port(testing::closedPort());
  f.config().mutable_services(0)->set_retries(0);
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(f.get("/x").status == 502);
  body = f.waitFor(f.requests(502, "kong") + " 1");
  CHECK(value(body, f.requests(200, "service")) == 2);
  CHECK(has(body, "# TYPE kong_http_requests_total counter\n"));
  CHECK(has(body, "# HELP kong_http_requests_total HTTP status codes per consumer/service/route "
                  "in Kong\n"));
  CHECK(has(body, "\nkong_nginx_metric_errors_total 0\n"));
  CHECK(has(body, "\nkong_datastore_reachable 1\n"));
  // Only the families this config asked for (Kong's granular switches).
  CHECK_FALSE(has(body, "kong_latency_ms"));
  CHECK_FALSE(has(body, "bandwidth_bytes"));
  CHECK_FALSE(has(body, "upstream_target_health"));
  CHECK_FALSE(has(body, "kong_control_plane_connected"));  // not a hybrid DP
  const std::regex node_info(
      "\nkong_node_info\\{node_id=\"([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
      "[0-9a-f]{12})\",version=\"0\\.1\\.0\"\\} 1\n");
  std::smatch m;
  REQUIRE(std::regex_search(body, m, node_info));
  const std::string node = m[1];
  for (const char* state :
       {"accepted", "handled", "total", "active", "reading", "writing", "waiting"}) {
    CHECK(value(body, "kong_nginx_connections_total{node_id=\"" + node +
                          "\",subsystem=\"http\",state=\"" + state + "\"}") >= 0);
  }
  // This proxy saw 3 connections and 3 requests, none open now.
  CHECK(value(body, "kong_nginx_connections_total{node_id=\"" + node +
                        "\",subsystem=\"http\",state=\"accepted\"}") == 3);
  CHECK(value(body, "kong_nginx_connections_total{node_id=\"" + node +
                        "\",subsystem=\"http\",state=\"total\"}") == 3);
  CHECK(value(body, "kong_nginx_requests_total{node_id=\"" + node + "\",subsystem=\"http\"}") ==
        3);
  // Every line is a comment, a kong_ sample or one of the DP's own portico_ samples.
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    INFO(line);
    CHECK(std::regex_search(line, std::regex("^(#|kong_|portico_)")));
  }
}

TEST_CASE("prometheus: kong_nginx_connections_total follows the connections' states") {
  PromFixture f("pm-conns", Json::object());
  auto states = [&]() {
    const std::string body = f.metrics();
    std::smatch m;
    REQUIRE(std::regex_search(body, m, std::regex("kong_node_info\\{node_id=\"([^\"]+)\"")));
    std::string out;
    for (const char* state : {"active", "reading", "writing", "waiting"}) {
      out += std::string(state) + "=" +
             std::to_string(static_cast<int>(
                 value(body, "kong_nginx_connections_total{node_id=\"" + std::string(m[1]) +
                                 "\",subsystem=\"http\",state=\"" + state + "\"}"))) +
             " ";
    }
    return out;
  };
  auto eventually = [&](const std::string& want) {
    std::string got;
    for (int i = 0; i < 200 && (got = states()) != want; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(got == want);
  };
  eventually("active=0 reading=0 writing=0 waiting=0 ");
  {
    RawClient idle(f.port());  // answered, then kept alive: waiting
    idle.send("GET /x HTTP/1.1\r\nHost: plugins.test\r\n\r\n");
    CHECK(idle.read().status == 200);
    RawClient partial(f.port());  // half a head: reading
    partial.send("GET /x HTTP/1.1\r\nHo");
    RawClient slow(f.port());  // waiting for the upstream (/slow sleeps 1.5 s): writing
    slow.send("GET /slow HTTP/1.1\r\nHost: plugins.test\r\n\r\n");
    eventually("active=3 reading=1 writing=1 waiting=1 ");
    CHECK(slow.read().status == 200);
    eventually("active=3 reading=1 writing=0 waiting=2 ");
  }
  eventually("active=0 reading=0 writing=0 waiting=0 ");
}

TEST_CASE("prometheus: a plugin's reply is source=\"kong\"; per_consumer names the consumer") {
  PromFixture f("pm-consumer", {{"per_consumer", true}, {"status_code_metrics", true},
                                {"bandwidth_metrics", true}});
  f.add("plugins", {{"name", "key-auth"}});
  const std::string alice = f.add("consumers", {{"username", "alice"}})["id"];
  f.add("keyauth_credentials", {{"key", "alice-key"}, {"consumer", {{"id", alice}}}});
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(f.get("/x", "apikey: alice-key\r\n").status == 200);
  CHECK(f.get("/x").status == 401);
  std::string body = f.waitFor(f.requests(401, "kong", "") + " 1");
  CHECK(value(body, f.requests(200, "service", "alice")) == 1);
  CHECK(has(body, "kong_bandwidth_bytes{service=\"pm-consumer-svc\",route=\"pm-consumer\","
                  "direction=\"ingress\",workspace=\"default\",consumer=\"alice\"} "));
  CHECK(has(body, "kong_bandwidth_bytes{service=\"pm-consumer-svc\",route=\"pm-consumer\","
                  "direction=\"egress\",workspace=\"default\",consumer=\"\"} "));

  // Without per_consumer the label is "".
  f.config().mutable_plugins(0)->set_config(
      Json({{"per_consumer", false}, {"status_code_metrics", true}}).dump());
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(f.get("/x", "apikey: alice-key\r\n").status == 200);
  f.waitFor(f.requests(200, "service", "") + " 1");
}

TEST_CASE("prometheus: bandwidth counts the exact bytes of the request and the response") {
  PromFixture f("pm-bytes", {{"bandwidth_metrics", true}});
  const std::string request =
      "POST /upload HTTP/1.1\r\nHost: plugins.test\r\nContent-Length: 11\r\n"
      "Connection: close\r\n\r\nhello world";
  const std::string response = roundTrip(f.port(), request);
  REQUIRE(response.rfind("HTTP/1.1 200", 0) == 0);
  const std::string egress = "kong_bandwidth_bytes{service=\"pm-bytes-svc\",route=\"pm-bytes\","
                             "direction=\"egress\",workspace=\"default\",consumer=\"\"}";
  const std::string ingress = "kong_bandwidth_bytes{service=\"pm-bytes-svc\",route=\"pm-bytes\","
                              "direction=\"ingress\",workspace=\"default\",consumer=\"\"}";
  std::string body = f.waitFor(egress + " " + std::to_string(response.size()));
  CHECK(value(body, ingress) == static_cast<double>(request.size()));

  // Two pipelined requests on one keep-alive connection: each counts its own bytes.
  const std::string two = "GET /a HTTP/1.1\r\nHost: plugins.test\r\n\r\n"
                          "GET /b HTTP/1.1\r\nHost: plugins.test\r\nConnection: close\r\n\r\n";
  const std::string answers = roundTrip(f.port(), two);
  REQUIRE(answers.find("HTTP/1.1 200", 1) != std::string::npos);
  body = f.waitFor(egress + " " + std::to_string(response.size() + answers.size()));
  CHECK(value(body, ingress) == static_cast<double>(request.size() + two.size()));
  CHECK_FALSE(has(body, "kong_http_requests_total{service=\"pm-bytes-svc\""));
  CHECK_FALSE(has(body, "kong_latency_ms"));
  CHECK_FALSE(has(body, "upstream_target_health"));
}

TEST_CASE("prometheus: latency histograms with Kong's buckets; no upstream latency without an "
          "upstream") {
  PromFixture f("pm-latency", {{"latency_metrics", true}});
  // The scripted upstream sleeps 1.5 s on /slow before it answers.
  CHECK(f.get("/slow").status == 200);
  const std::string labels = f.routeLabels();
  std::string body = f.waitFor("kong_request_latency_ms_count{" + labels + "} 1");
  CHECK(has(body, "# TYPE kong_kong_latency_ms histogram\n"));
  CHECK(has(body, "# TYPE kong_upstream_latency_ms histogram\n"));
  CHECK(has(body, "# TYPE kong_request_latency_ms histogram\n"));
  // Kong's buckets, in order, and +Inf last.
  for (const char* le : {"1", "2", "5", "7", "10", "15", "20", "30", "50", "75", "100", "200",
                         "500", "750", "1000", "3000", "6000", "+Inf"}) {
    CHECK(value(body, "kong_kong_latency_ms_bucket{" + labels + ",le=\"" + le + "\"}") == 1);
  }
  for (const char* le : {"25", "50", "80", "100", "250", "400", "700", "1000"}) {
    CHECK(value(body, "kong_upstream_latency_ms_bucket{" + labels + ",le=\"" + le + "\"}") == 0);
    CHECK(value(body, "kong_request_latency_ms_bucket{" + labels + ",le=\"" + le + "\"}") == 0);
  }
  for (const char* le : {"2000", "5000", "10000", "30000", "60000", "+Inf"}) {
    CHECK(value(body, "kong_upstream_latency_ms_bucket{" + labels + ",le=\"" + le + "\"}") == 1);
    CHECK(value(body, "kong_request_latency_ms_bucket{" + labels + ",le=\"" + le + "\"}") == 1);
  }
  CHECK(value(body, "kong_upstream_latency_ms_sum{" + labels + "}") >= 1500);
  CHECK(value(body, "kong_upstream_latency_ms_count{" + labels + "}") == 1);
  CHECK_FALSE(has(body, "http_requests_total{service=\"pm-latency-svc\""));
  CHECK_FALSE(has(body, "bandwidth_bytes{service=\"pm-latency-svc\""));

  // request-termination answers itself: kong and request latency, no upstream latency.
  PromFixture t("pm-latency-local", {{"latency_metrics", true}});
  t.add("plugins", {{"name", "request-termination"}});
  REQUIRE(t.apply().ToString() == "OK");
  CHECK(t.get("/x").status == 503);
  body = t.waitFor("kong_request_latency_ms_count{" + t.routeLabels() + "} 1");
  CHECK(value(body, "kong_kong_latency_ms_count{" + t.routeLabels() + "}") == 1);
  CHECK_FALSE(has(body, "kong_upstream_latency_ms_count{" + t.routeLabels() + "}"));
}

TEST_CASE("prometheus: upstream_health_metrics, global; nothing recorded without a route") {
  PromFixture f("pm-health", {{"upstream_health_metrics", true}});
  const std::string up = f.add("upstreams", {{"name", "pm-up"}})["id"];
  f.add("targets", {{"upstream", {{"id", up}}}, {"target", "127.0.0.1:" + std::to_string(12345)}});
  f.add("targets", {{"upstream", {{"id", up}}}, {"target", "pm-no-such-host.invalid:80"}});
  REQUIRE(f.apply().ToString() == "OK");
  std::string body = f.metrics();
  INFO(body);
  const std::string ok = "kong_upstream_target_health{upstream=\"pm-up\",target=\"127.0.0.1:12345\","
                         "address=\"127.0.0.1:12345\",state=\"";
  CHECK(value(body, ok + "healthchecks_off\",subsystem=\"http\"}") == 1);
  CHECK(value(body, ok + "healthy\",subsystem=\"http\"}") == 0);
  CHECK(value(body, ok + "unhealthy\",subsystem=\"http\"}") == 0);
  CHECK(value(body, ok + "dns_error\",subsystem=\"http\"}") == 0);
  const std::string dns = "kong_upstream_target_health{upstream=\"pm-up\",target=\""
                          "pm-no-such-host.invalid:80\",address=\"\",state=\"";
  CHECK(value(body, dns + "dns_error\",subsystem=\"http\"}") == 1);
  CHECK(value(body, dns + "healthchecks_off\",subsystem=\"http\"}") == 0);

  // Health checks on: the address is healthy or unhealthy. A second instance without the flag
  // does not turn the global switch off.
  f.config().mutable_upstreams(0)->set_healthchecks(
      Json({{"passive", {{"unhealthy", {{"tcp_failures", 1}}}}}}).dump());
  f.add("plugins", {{"name", "prometheus"},
                    {"route", {{"id", f.routeId()}}},
                    {"config", Json::object()}});
  REQUIRE(f.apply().ToString() == "OK");
  body = f.metrics();
  CHECK(value(body, ok + "healthy\",subsystem=\"http\"}") == 1);
  CHECK(value(body, ok + "healthchecks_off\",subsystem=\"http\"}") == 0);

  // Without upstream_health_metrics anywhere the family is gone; a request no route matches is
  // not recorded.
  f.config().mutable_plugins()->RemoveLast();  // the route-scoped instance
  f.config().mutable_plugins(0)->set_config(Json({{"status_code_metrics", true}}).dump());
  f.config().mutable_routes(0)->clear_paths();
  f.config().mutable_routes(0)->add_paths("/only-here");
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(f.get("/elsewhere").status == 404);
  CHECK(f.get("/only-here").status == 200);
  body = f.waitFor(f.requests(200, "service") + " 1");
  CHECK_FALSE(has(body, "upstream_target_health"));
  CHECK_FALSE(has(body, "code=\"404\""));
}

TEST_CASE("prometheus: without a prometheus plugin only Kong's node families are exported") {
  PluginFixture f;
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(f.get("/x").status == 200);
  const std::string body = f.metrics();
  CHECK_FALSE(has(body, "kong_http_requests_total"));
  CHECK_FALSE(has(body, "kong_nginx_metric_errors_total"));
  CHECK_FALSE(has(body, "_latency_ms"));
  CHECK(has(body, "\nkong_node_info{"));
  CHECK(has(body, "\nkong_nginx_connections_total{"));
  CHECK(has(body, "\nkong_datastore_reachable 1\n"));
  CHECK(has(body, "\nportico_dp_requests_total "));  // the DP's own families stay
}

TEST_CASE("prometheus: series of a deleted route are retired after the grace period and freed") {
  PromFixture f("pm-retire", {{"status_code_metrics", true}, {"latency_metrics", true}});
  CHECK(f.get("/x").status == 200);
  f.waitFor(f.requests(200, "service") + " 1");
  auto scrape = [&](int64_t now_ms) {
    metrics::Writer w;
    plugins::prometheus::ExportOptions o;
    o.now_ms = now_ms;
    plugins::prometheus::appendKongFamilies(f.store().get(), f.stats()->totals(), {}, &w, o);
    return w.text();
  };
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  // The route is renamed: its old series name nothing the config has any more.
  f.config().mutable_routes(0)->set_name("pm-retire-renamed");
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(has(scrape(now), f.requests(200, "service") + " 1"));           // dead from now on
  CHECK(has(scrape(now + 59000), f.requests(200, "service") + " 1"));   // within the grace
  const size_t held = SeriesStore::process().seriesHeld();
  std::string body = scrape(now + 60000);
  CHECK_FALSE(has(body, f.requests(200, "service")));
  CHECK_FALSE(has(body, "route=\"pm-retire\""));
  // The worker lets go on its next request (which records under the new name) and a later
  // scrape frees them: two series (requests and latency) freed, two created.
  CHECK(f.get("/x").status == 200);
  f.route = "pm-retire-renamed";
  f.waitFor(f.requests(200, "service") + " 1");
  body = scrape(now + 60001);
  CHECK(SeriesStore::process().seriesHeld() == held);  // 2 freed, 2 created
  CHECK_FALSE(has(body, "route=\"pm-retire\""));
  // The old name comes back: a new series starts from 0 (a counter reset for Prometheus).
  f.config().mutable_routes(0)->set_name("pm-retire");
  REQUIRE(f.apply().ToString() == "OK");
  f.route = "pm-retire";
  CHECK(f.get("/x").status == 200);
  f.waitFor(f.requests(200, "service") + " 1");
}

TEST_CASE("prometheus series store: shards under concurrent writers and a scraper; exited "
          "threads' counts are kept") {
  // A store of its own (never destroyed: threads that recorded into it may outlive it).
  static SeriesStore* const store = new SeriesStore();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::atomic<bool> done{false};
  std::thread scraper([&] {
    int64_t now = 0;
    while (!done.load()) {
      const Merged m = store->collect(nullptr, ++now, 0);
      uint64_t total = 0;
      for (const auto& [k, v] : m.requests) total += v;
      CHECK(total <= uint64_t{kThreads} * kPerThread);
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([t] {
      for (int i = 0; i < kPerThread; ++i) {
        Sample s;
        s.service = "svc";
        s.route = i % 2 == 0 ? "even" : "odd";
        s.consumer = t % 2 == 0 ? "a" : "";
        s.code = static_cast<uint16_t>(200 + i % 3);
        s.from_service = true;
        s.bandwidth = true;
        s.ingress = 10;
        s.egress = 100;
        s.latency = true;
        s.kong_ms = i % 10;
        s.upstream_ms = 30;
        s.request_ms = 40;
        store->record(s);
      }
    });
  }
  for (std::thread& w : writers) w.join();
  done = true;
  scraper.join();
  const Merged m = store->collect(nullptr, 1 << 30, 0);
  uint64_t total = 0;
  for (const auto& [k, v] : m.requests) total += v;
  CHECK(total == uint64_t{kThreads} * kPerThread);
  CHECK(m.requests.size() == 2 * 2 * 3);  // route x consumer x code
  const auto& a = m.bandwidth.at({"svc", "even", "a"});
  CHECK(a[0] == uint64_t{kThreads / 2} * (kPerThread / 2) * 10);
  CHECK(a[1] == uint64_t{kThreads / 2} * (kPerThread / 2) * 100);
  const auto& h = m.latency.at({"svc", "odd"});
  CHECK(h.kong.count() == uint64_t{kThreads} * kPerThread / 2);
  CHECK(h.upstream.buckets[1] == uint64_t{kThreads} * kPerThread / 2);  // 30 ms: le=50
  CHECK(h.request.sum == uint64_t{kThreads} * kPerThread / 2 * 40);
  CHECK(m.dropped == 0);
  CHECK(store->seriesHeld() == 0);  // every writer exited: all folded into the retained sums
}

TEST_CASE("prometheus series store: a consumer or route that left the config is retired; the "
          "series cap drops and counts") {
  static SeriesStore* const store = new SeriesStore();
  Sample s;
  s.service = "svc";
  s.route = "r";
  s.consumer = "carol";
  s.code = 200;
  store->record(s);
  s.consumer = "";
  store->record(s);
  Live live;
  live.addRoute("svc", "r");
  Merged m = store->collect(&live, 1000, 10);  // carol is not in the config: dead from 1000
  CHECK(m.requests.size() == 2);
  m = store->collect(&live, 1010, 10);
  REQUIRE(m.requests.size() == 1);
  CHECK(std::get<4>(m.requests.begin()->first) == "");
  live.addConsumer("carol");
  s.consumer = "carol";
  store->record(s);  // lets go of the retired node, starts a new series
  m = store->collect(&live, 1020, 10);
  CHECK(m.requests.size() == 2);
  CHECK(m.requests.at({"svc", "r", 200, false, "carol"}) == 1);

  // Over kMaxSeriesPerShard series on one thread, new series are dropped and counted.
  static SeriesStore* const capped = new SeriesStore();
  std::thread([] {
    std::vector<std::string> names;
    for (uint32_t i = 0; i <= plugins::prometheus::kMaxSeriesPerShard; ++i) {
      Sample x;
      const std::string route = "r" + std::to_string(i);
      x.service = "svc";
      x.route = route;
      x.code = 200;
      capped->record(x);
    }
    CHECK(capped->seriesHeld() == plugins::prometheus::kMaxSeriesPerShard);
    const Merged c = capped->collect(nullptr, 0, 0);
    CHECK(c.requests.size() == plugins::prometheus::kMaxSeriesPerShard);
    CHECK(c.dropped == 1);
  }).join();
}

TEST_CASE("prometheus: label values are cut at the first invalid UTF-8 byte, as Kong does") {
  using plugins::prometheus::validUtf8Prefix;
  CHECK(validUtf8Prefix("plain") == "plain");
  CHECK(validUtf8Prefix("caf\xc3\xa9!") == "caf\xc3\xa9!");
  CHECK(validUtf8Prefix("ab\xc3") == "ab");
  CHECK(validUtf8Prefix("ab\xff" "cd") == "ab");
  CHECK(validUtf8Prefix("\xed\xa0\x80x") == "");  // a UTF-16 surrogate
  CHECK(validUtf8Prefix("\xf0\x9f\x98\x80") == "\xf0\x9f\x98\x80");
}

TEST_CASE("prometheus: promtool check metrics on the whole /metrics body") {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    WARN("promtool not installed (Debian package prometheus): skipped");
    return;
  }
  PromFixture f("pm-promtool", kAllOn);
  const std::string up = f.add("upstreams", {{"name", "pm-promtool-up"}})["id"];
  f.add("targets", {{"upstream", {{"id", up}}}, {"target", "127.0.0.1:1"}});
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(f.get("/x").status == 200);
  const std::string body = f.waitFor(f.requests(200, "service") + " 1");
  char path[] = "/tmp/portico-promtool-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  std::ofstream(path) << body;
  FILE* p = ::popen(("promtool check metrics < " + std::string(path) + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  const int status = ::pclose(p);
  std::remove(path);
  INFO(out);
  // The format parses; the only findings are promtool's naming lints on Kong's own family
  // names, which Kong's exporter triggers alike and which dashboards depend on.
  const std::set<std::string> kongNames = {
      "kong_bandwidth_bytes counter metrics should have \"_total\" suffix",
      "kong_kong_latency_ms metric names should not contain abbreviated units",
      "kong_nginx_connections_total non-counter metrics should not have \"_total\" suffix",
      "kong_nginx_requests_total non-counter metrics should not have \"_total\" suffix",
      "kong_request_latency_ms metric names should not contain abbreviated units",
      "kong_upstream_latency_ms metric names should not contain abbreviated units"};
  std::set<std::string> findings;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) findings.insert(line);
  }
  CHECK(findings == kongNames);
  CHECK(WEXITSTATUS(status) == 3);  // lint findings only (1 would be a parse error)
}

}  // namespace
}  // namespace portico::dp
