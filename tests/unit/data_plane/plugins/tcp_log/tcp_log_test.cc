// tcp-log and udp-log: schemas; lines over TCP (kept connection), datagrams over UDP, to real
// receivers on loopback; a TCP log server that is down does not affect requests and its lost
// entries are counted.
#include <chrono>

#include <catch2/catch.hpp>

#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/http_log/log_receivers.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::PluginFixture;

TEST_CASE("tcp-log and udp-log schemas", "[tcp-log][udp-log]") {
  Json d = testing::pluginDefaults(
      {{"name", "tcp-log"}, {"config", {{"host", "logs.local"}, {"port", 5000}}}});
  CHECK(d["config"] == Json({{"host", "logs.local"},
                             {"port", 5000},
                             {"timeout", 10000},
                             {"keepalive", 60000},
                             {"tls", false},
                             {"tls_sni", nullptr},
                             {"custom_fields_by_lua", nullptr}}));
  d = testing::pluginDefaults(
      {{"name", "udp-log"}, {"config", {{"host", "logs.local"}, {"port", 5000}}}});
  CHECK(d["config"] == Json({{"host", "logs.local"},
                             {"port", 5000},
                             {"timeout", 10000},
                             {"custom_fields_by_lua", nullptr}}));
  for (const char* name : {"tcp-log", "udp-log"}) {
    INFO(name);
    CHECK(testing::pluginSchemaError({{"name", name}, {"config", {{"port", 5000}}}}) ==
          "config.host: required field missing");
    CHECK(testing::pluginSchemaError({{"name", name}, {"config", {{"host", "a"}}}}) ==
          "config.port: required field missing");
    CHECK(testing::pluginSchemaError(
              {{"name", name}, {"config", {{"host", "a"}, {"port", 70000}}}}) ==
          "config.port: value should be between 0 and 65535");
    CHECK(testing::pluginSchemaError(
              {{"name", name},
               {"config", {{"host", "a"}, {"port", 1}, {"custom_fields_by_lua", {{"k", "v"}}}}}}) ==
          "config.custom_fields_by_lua: Lua code is not supported by Portico: "
          "custom_fields_by_lua must be empty or null");
  }
}

TEST_CASE("tcp-log: one JSON line per request on a kept connection", "[tcp-log]") {
  testing::LineReceiver server;
  PluginFixture f;
  f.add("plugins", {{"name", "tcp-log"},
                    {"config", {{"host", "127.0.0.1"}, {"port", server.port()}}}});
  REQUIRE(f.apply().ToString() == "OK");
  for (int i = 0; i < 3; ++i) REQUIRE(f.get("/t/" + std::to_string(i)).status == 200);
  REQUIRE(testing::waitFor([&] { return server.lines().size() == 3; }));
  const auto lines = server.lines();
  for (int i = 0; i < 3; ++i) {
    const Json e = Json::parse(lines[static_cast<size_t>(i)]);
    CHECK(e["request"]["uri"] == "/t/" + std::to_string(i));
    CHECK(e["response"]["status"] == 200);
    CHECK(e["route"]["id"] == f.routeId());
  }
  CHECK(server.connections() == 1);
}

TEST_CASE("tcp-log: TLS with tls_sni (not verified, as Kong)", "[tcp-log]") {
  testing::TlsReceiver server(/*http=*/false);
  REQUIRE(server.ok());
  PluginFixture f;
  f.add("plugins", {{"name", "tcp-log"},
                    {"config",
                     {{"host", "127.0.0.1"},
                      {"port", server.port()},
                      {"tls", true},
                      {"tls_sni", "logs.example"}}}});
  REQUIRE(f.apply().ToString() == "OK");
  REQUIRE(f.get("/s/1").status == 200);
  REQUIRE(testing::waitFor([&] { return server.received().size() == 1; }));
  REQUIRE(f.get("/s/2").status == 200);
  REQUIRE(testing::waitFor([&] { return server.received().size() == 2; }));
  CHECK(Json::parse(server.received()[0])["request"]["uri"] == "/s/1");
  CHECK(Json::parse(server.received()[1])["request"]["uri"] == "/s/2");
  CHECK(server.snis() == std::vector<std::string>{"logs.example"});  // one kept connection
}

TEST_CASE("tcp-log: a log server that is down: requests unaffected, losses counted",
          "[tcp-log]") {
  PluginFixture f;
  f.add("plugins", {{"name", "tcp-log"},
                    {"config", {{"host", "127.0.0.1"}, {"port", testing::closedPort()}}}});
  REQUIRE(f.apply().ToString() == "OK");
  const double failed = testing::metricValue(f.metrics(), "portico_dp_tcp_log_failed_total");
  for (int i = 0; i < 20; ++i) {
    const auto start = std::chrono::steady_clock::now();
    REQUIRE(f.get("/down").status == 200);
    REQUIRE(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  }
  CHECK(testing::waitFor([&] {
    return testing::metricValue(f.metrics(), "portico_dp_tcp_log_failed_total") ==
           failed + 20;
  }));
}

TEST_CASE("udp-log: one datagram per request, the JSON object without a newline",
          "[udp-log]") {
  testing::UdpReceiver server;
  PluginFixture f;
  f.add("plugins", {{"name", "udp-log"},
                    {"config", {{"host", "127.0.0.1"}, {"port", server.port()}}}});
  REQUIRE(f.apply().ToString() == "OK");
  REQUIRE(f.get("/u/1").status == 200);
  REQUIRE(f.get("/u/2").status == 200);
  REQUIRE(testing::waitFor([&] { return server.datagrams().size() == 2; }));
  const auto got = server.datagrams();
  CHECK(got[0].back() == '}');
  CHECK(Json::parse(got[0])["request"]["uri"] == "/u/1");
  CHECK(Json::parse(got[1])["request"]["uri"] == "/u/2");
  CHECK(Json::parse(got[1])["source"] == "service");
}

}  // namespace
}  // namespace portico::dp
