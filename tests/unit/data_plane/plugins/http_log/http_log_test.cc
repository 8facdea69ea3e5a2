// http-log: schema (Kong's fields, defaults and messages, the queue record); delivery to a real
// HTTP server on loopback: one JSON object per request, arrays when batching, custom headers
// and Basic auth from the endpoint's user info; retries after a 500; and a log server that is
// down, never answers or resets: requests unaffected, entries dropped and counted.
#include <chrono>

#include <catch2/catch.hpp>

#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/http_log/log_receivers.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::HttpReceiver;
using testing::PluginFixture;

std::string endpoint(int port, const std::string& path = "/logs") {
  return "http://127.0.0.1:" + std::to_string(port) + path;
}

double metric(PluginFixture& f, const char* name) {
  return testing::metricValue(f.metrics(), name);
}

// Requests through the proxy: all 200, each answered in under 2 s.
void sendAllFast(PluginFixture& f, int n) {
  for (int i = 0; i < n; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const testing::WireResponse r = f.get("/r/" + std::to_string(i));
    const auto took = std::chrono::steady_clock::now() - start;
    REQUIRE(r.status == 200);
    REQUIRE(took < std::chrono::seconds(2));
  }
}

TEST_CASE("http-log schema", "[http-log]") {
  Json d = testing::pluginDefaults(
      {{"name", "http-log"}, {"config", {{"http_endpoint", "http://example.com/"}}}});
  CHECK(d["config"] == Json({{"http_endpoint", "http://example.com/"},
                             {"method", "POST"},
                             {"content_type", "application/json"},
                             {"timeout", 10000},
                             {"keepalive", 60000},
                             {"retry_count", nullptr},
                             {"queue_size", nullptr},
                             {"flush_timeout", nullptr},
                             {"headers", nullptr},
                             {"queue",
                              {{"max_batch_size", 1},
                               {"max_coalescing_delay", 1},
                               {"max_entries", 10000},
                               {"max_bytes", nullptr},
                               {"max_retry_time", 60},
                               {"initial_retry_delay", 0.01},
                               {"max_retry_delay", 60},
                               {"concurrency_limit", 1}}},
                             {"custom_fields_by_lua", nullptr}}));
  CHECK(d["protocols"] == Json({"grpc", "grpcs", "http", "https"}));
  auto err = [](Json config) {
    return testing::pluginSchemaError({{"name", "http-log"}, {"config", config}});
  };
  const std::string ok = "http://example.com/";
  CHECK(err(Json::object()) == "config.http_endpoint: required field missing");
  CHECK(err({{"http_endpoint", "example.com/x"}}) ==
        "config.http_endpoint: missing host in url");
  CHECK(err({{"http_endpoint", "//example.com/x"}}) ==
        "config.http_endpoint: missing scheme in url");
  CHECK(err({{"http_endpoint", "ftp://example.com/x"}}) ==
        "config.http_endpoint: unsupported scheme in url: Portico sends logs over http and "
        "https only");
  CHECK(err({{"http_endpoint", ok}, {"method", "GET"}}) ==
        "config.method: expected one of: POST, PUT, PATCH");
  CHECK(err({{"http_endpoint", ok}, {"content_type", "text/plain"}}) ==
        "config.content_type: expected one of: application/json, application/json; "
        "charset=utf-8");
  CHECK(err({{"http_endpoint", ok}, {"content_type", "application/json; charset=utf-8"}}) == "");
  CHECK(err({{"http_endpoint", ok}, {"headers", {{"Host", "x"}}}}) ==
        "config.headers: cannot contain 'Host' header");
  CHECK(err({{"http_endpoint", ok}, {"headers", {{"content-length", "1"}}}}) ==
        "config.headers: cannot contain 'Content-Length' header");
  CHECK(err({{"http_endpoint", ok}, {"headers", {{"Content-Type", "x"}}}}) ==
        "config.headers: cannot contain 'Content-Type' header");
  CHECK(err({{"http_endpoint", "http://u:p@example.com/"},
             {"headers", {{"Authorization", "x"}}}}) ==
        "config: specifying both an 'Authorization' header and user info in 'http_endpoint' "
        "is not allowed");
  CHECK(err({{"http_endpoint", ok}, {"headers", {{"Authorization", "x"}}}}) == "");
  CHECK(err({{"http_endpoint", ok}, {"queue", {{"concurrency_limit", 2}}}}) ==
        "config.queue.concurrency_limit: expected one of: -1, 1");
  CHECK(err({{"http_endpoint", ok}, {"queue", {{"max_batch_size", 0}}}}) ==
        "config.queue.max_batch_size: value should be between 1 and 1000000");
  CHECK(err({{"http_endpoint", ok}, {"queue", {{"max_coalescing_delay", 3601}}}}) ==
        "config.queue.max_coalescing_delay: value should be between 0 and 3600");
  CHECK(err({{"http_endpoint", ok}, {"queue", {{"initial_retry_delay", 0}}}}) ==
        "config.queue.initial_retry_delay: value should be between 0.001 and 1000000");
  CHECK(err({{"http_endpoint", ok}, {"custom_fields_by_lua", {{"x", "return 1"}}}}) ==
        "config.custom_fields_by_lua: Lua code is not supported by Portico: "
        "custom_fields_by_lua must be empty or null");
  // The deprecated fields are still accepted.
  CHECK(err({{"http_endpoint", ok}, {"retry_count", 3}, {"queue_size", 5},
             {"flush_timeout", 1.5}}) == "");
}

TEST_CASE("http-log: one JSON object per request, method, headers, Basic auth", "[http-log]") {
  HttpReceiver server;
  PluginFixture f;
  f.add("plugins",
        {{"name", "http-log"},
         {"config",
          {{"http_endpoint", "http://user:pa%20ss@127.0.0.1:" + std::to_string(server.port()) +
                                 "/logs/in?ignored=1"},
           {"method", "PUT"},
           {"content_type", "application/json; charset=utf-8"},
           {"headers", {{"X-Tenant", "t1"}}}}}});
  REQUIRE(f.apply().ToString() == "OK");
  REQUIRE(f.get("/a?x=1", "X-Mine: yes\r\n").status == 200);
  REQUIRE(f.get("/b").status == 200);
  REQUIRE(testing::waitFor([&] { return server.count() == 2; }));
  const std::vector<testing::ReceivedRequest> got = server.requests();
  const testing::ReceivedRequest& r = got[0];
  CHECK(r.method == "PUT");
  CHECK(r.target == "/logs/in");  // Kong sends scheme://host:port/path: the query is dropped
  CHECK(r.headers.at("content-type") == "application/json; charset=utf-8");
  CHECK(r.headers.at("host") == "127.0.0.1:" + std::to_string(server.port()));
  CHECK(r.headers.at("x-tenant") == "t1");
  CHECK(r.headers.at("authorization") == "Basic " + testing::base64("user:pa%20ss"));
  const Json e = Json::parse(r.body);
  REQUIRE(e.is_object());
  CHECK(e["request"]["uri"] == "/a?x=1");
  CHECK(e["request"]["headers"]["x-mine"] == "yes");
  CHECK(e["response"]["status"] == 200);
  CHECK(e["route"]["id"] == f.routeId());
  CHECK(Json::parse(got[1].body)["request"]["uri"] == "/b");
  CHECK(server.connections() == 1);  // the connection is kept (keepalive)
}

TEST_CASE("http-log: batches are JSON arrays (max_batch_size > 1, even of one entry)",
          "[http-log]") {
  HttpReceiver server;
  PluginFixture f;
  f.add("plugins", {{"name", "http-log"},
                    {"config",
                     {{"http_endpoint", endpoint(server.port())},
                      {"queue", {{"max_batch_size", 3}, {"max_coalescing_delay", 30}}}}}});
  REQUIRE(f.apply().ToString() == "OK");
  for (int i = 0; i < 3; ++i) REQUIRE(f.get("/batch/" + std::to_string(i)).status == 200);
  REQUIRE(testing::waitFor([&] { return server.count() == 1; }));
  Json batch = Json::parse(server.requests()[0].body);
  REQUIRE(batch.is_array());
  REQUIRE(batch.size() == 3);
  for (int i = 0; i < 3; ++i) CHECK(batch[i]["request"]["uri"] == "/batch/" + std::to_string(i));

  // A lone entry goes once the coalescing delay has passed, still as an array.
  HttpReceiver server2;
  PluginFixture g;
  g.add("plugins", {{"name", "http-log"},
                    {"config",
                     {{"http_endpoint", endpoint(server2.port())},
                      {"queue", {{"max_batch_size", 10}, {"max_coalescing_delay", 0.2}}}}}});
  REQUIRE(g.apply().ToString() == "OK");
  REQUIRE(g.get("/alone").status == 200);
  REQUIRE(testing::waitFor([&] { return server2.count() == 1; }));
  batch = Json::parse(server2.requests()[0].body);
  REQUIRE(batch.is_array());
  REQUIRE(batch.size() == 1);
  CHECK(batch[0]["request"]["uri"] == "/alone");

  // The deprecated queue_size still sets the batch size (Kong's get_plugin_params).
  HttpReceiver server3;
  PluginFixture h;
  h.add("plugins", {{"name", "http-log"},
                    {"config",
                     {{"http_endpoint", endpoint(server3.port())},
                      {"queue_size", 2},
                      {"queue", {{"max_coalescing_delay", 30}}}}}});
  REQUIRE(h.apply().ToString() == "OK");
  REQUIRE(h.get("/q1").status == 200);
  REQUIRE(h.get("/q2").status == 200);
  REQUIRE(testing::waitFor([&] { return server3.count() == 1; }));
  CHECK(Json::parse(server3.requests()[0].body).size() == 2);
}

TEST_CASE("http-log: a failed send is retried with backoff until it is accepted",
          "[http-log]") {
  HttpReceiver server;
  server.script({500, 503});
  PluginFixture f;
  f.add("plugins", {{"name", "http-log"},
                    {"config",
                     {{"http_endpoint", endpoint(server.port())},
                      {"queue", {{"initial_retry_delay", 0.05}, {"max_retry_delay", 0.1}}}}}});
  REQUIRE(f.apply().ToString() == "OK");
  const double sent = metric(f, "portico_dp_http_log_sent_total");
  REQUIRE(f.get("/retried").status == 200);
  REQUIRE(testing::waitFor([&] { return server.count() == 3; }));
  const auto got = server.requests();
  for (const auto& r : got) CHECK(Json::parse(r.body)["request"]["uri"] == "/retried");
  CHECK(testing::waitFor(
      [&] { return metric(f, "portico_dp_http_log_sent_total") == sent + 1; }));
}

TEST_CASE("http-log: a log server that is down: requests unaffected, entries given up",
          "[http-log]") {
  PluginFixture f;
  f.add("plugins", {{"name", "http-log"},
                    {"config",
                     {{"http_endpoint", endpoint(testing::closedPort())},
                      {"queue", {{"max_retry_time", 0.3}, {"initial_retry_delay", 0.05}}}}}});
  REQUIRE(f.apply().ToString() == "OK");
  const double failed = metric(f, "portico_dp_http_log_failed_total");
  sendAllFast(f, 20);
  CHECK(testing::waitFor(
      [&] { return metric(f, "portico_dp_http_log_failed_total") >= failed + 1; }, 10000));
}

TEST_CASE("http-log: a server that never answers: the queue is capped, drops counted",
          "[http-log]") {
  HttpReceiver server(HttpReceiver::Mode::kNeverRead);
  PluginFixture f;
  f.add("plugins", {{"name", "http-log"},
                    {"config",
                     {{"http_endpoint", endpoint(server.port())},
                      {"timeout", 60000},
                      {"queue", {{"max_entries", 5}}}}}});
  REQUIRE(f.apply().ToString() == "OK");
  const double dropped = metric(f, "portico_dp_http_log_dropped_total");
  sendAllFast(f, 30);
  // One entry is on the wire (unanswered), 5 wait: the rest were dropped, oldest first.
  CHECK(testing::waitFor(
      [&] { return metric(f, "portico_dp_http_log_dropped_total") == dropped + 24; }));
  CHECK(server.accepted() == 1);
}

TEST_CASE("http-log: a server that resets every connection: requests unaffected",
          "[http-log]") {
  HttpReceiver server(HttpReceiver::Mode::kReset);
  PluginFixture f;
  f.add("plugins", {{"name", "http-log"},
                    {"config",
                     {{"http_endpoint", endpoint(server.port())},
                      {"queue", {{"max_retry_time", 0.2}, {"initial_retry_delay", 0.02}}}}}});
  REQUIRE(f.apply().ToString() == "OK");
  const double failed = metric(f, "portico_dp_http_log_failed_total");
  sendAllFast(f, 20);
  CHECK(testing::waitFor(
      [&] { return metric(f, "portico_dp_http_log_failed_total") >= failed + 1; }, 10000));
  CHECK(testing::waitFor([&] { return server.accepted() >= 2; }));  // retried, reconnecting
}

TEST_CASE("http-log: https (not verified, as Kong's ssl_verify=false)", "[http-log]") {
  testing::TlsReceiver server(/*http=*/true);
  REQUIRE(server.ok());
  PluginFixture f;
  f.add("plugins", {{"name", "http-log"},
                    {"config",
                     {{"http_endpoint",
                       "https://localhost:" + std::to_string(server.port()) + "/secure"}}}});
  REQUIRE(f.apply().ToString() == "OK");
  REQUIRE(f.get("/tls/1").status == 200);
  REQUIRE(f.get("/tls/2").status == 200);
  REQUIRE(testing::waitFor([&] { return server.received().size() == 2; }));
  CHECK(Json::parse(server.received()[0])["request"]["uri"] == "/tls/1");
  CHECK(Json::parse(server.received()[1])["request"]["uri"] == "/tls/2");
  CHECK(server.snis() == std::vector<std::string>{"localhost"});  // one kept connection
}

TEST_CASE("http-log: concurrency_limit -1 sends entries on their own", "[http-log]") {
  HttpReceiver server;
  PluginFixture f;
  f.add("plugins", {{"name", "http-log"},
                    {"config",
                     {{"http_endpoint", endpoint(server.port())},
                      {"queue", {{"concurrency_limit", -1}, {"max_batch_size", 5}}}}}});
  REQUIRE(f.apply().ToString() == "OK");
  for (int i = 0; i < 4; ++i) REQUIRE(f.get("/c/" + std::to_string(i)).status == 200);
  REQUIRE(testing::waitFor([&] { return server.count() == 4; }));
  for (const auto& r : server.requests()) {
    const Json body = Json::parse(r.body);
    REQUIRE(body.is_array());  // Kong: an array of one when max_batch_size > 1
    CHECK(body.size() == 1);
  }
}

}  // namespace
}  // namespace portico::dp

namespace portico::dp {
namespace {

TEST_CASE("http-log: a config dropped with deliveries in flight leaves the log thread serving",
          "[http-log]") {
  testing::HttpReceiver slow(testing::HttpReceiver::Mode::kNeverRead);
  {
    testing::PluginFixture f;
    f.add("plugins", {{"name", "http-log"},
                      {"config",
                       {{"http_endpoint", "http://127.0.0.1:" + std::to_string(slow.port())},
                        {"timeout", 1000},
                        {"queue", {{"concurrency_limit", -1}}}}}});
    REQUIRE(f.apply().ToString() == "OK");
    for (int i = 0; i < 3; ++i) REQUIRE(f.get("/inflight").status == 200);
    REQUIRE(testing::waitFor([&] { return slow.accepted() == 3; }));
  }  // the config (and its sender) goes while its 3 deliveries wait for answers
  testing::HttpReceiver server;
  testing::PluginFixture g;
  g.add("plugins", {{"name", "http-log"},
                    {"config", {{"http_endpoint", "http://127.0.0.1:" + std::to_string(server.port())}}}});
  REQUIRE(g.apply().ToString() == "OK");
  REQUIRE(g.get("/after").status == 200);
  CHECK(testing::waitFor([&] { return server.count() == 1; }));
}

}  // namespace
}  // namespace portico::dp

namespace portico::dp {
namespace {

TEST_CASE("http-log: queue.max_bytes refuses an entry larger than the cap (counted)",
          "[http-log]") {
  testing::HttpReceiver server;
  testing::PluginFixture f;
  f.add("plugins", {{"name", "http-log"},
                    {"config",
                     {{"http_endpoint", "http://127.0.0.1:" + std::to_string(server.port())},
                      {"queue", {{"max_bytes", 100}}}}}});
  REQUIRE(f.apply().ToString() == "OK");
  const double dropped =
      testing::metricValue(f.metrics(), "portico_dp_http_log_dropped_total");
  for (int i = 0; i < 3; ++i) REQUIRE(f.get("/big").status == 200);
  CHECK(testing::waitFor([&] {
    return testing::metricValue(f.metrics(), "portico_dp_http_log_dropped_total") ==
           dropped + 3;
  }));
  CHECK(server.count() == 0);
}

}  // namespace
}  // namespace portico::dp
