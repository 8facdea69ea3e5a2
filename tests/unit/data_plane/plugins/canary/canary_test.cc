// canary: schema (Kong Enterprise's fields, defaults and messages) and which requests move,
// through the real proxy: two scripted upstreams, the service's and the canary's, told apart
// by the Host header each one echoes.
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <string>

#include <catch2/catch.hpp>

#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::PluginFixture;
using testing::ScriptedUpstream;
using testing::WireResponse;

Json canary(Json config) { return Json{{"name", "canary"}, {"config", std::move(config)}}; }

std::string schemaError(Json config) { return testing::pluginSchemaError(canary(config)); }

// Kong's bucket: crc32(identifier) mod steps.
double bucket(const std::string& id, double steps) {
  return std::fmod(
      static_cast<double>(crc32(0L, reinterpret_cast<const Bytef*>(id.data()),
                                static_cast<uInt>(id.size()))),
      steps);
}

int64_t nowS() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The fixture's service and route, and a second upstream for the canary.
struct CanaryFixture : PluginFixture {
  ScriptedUpstream canary_up;
  std::string canaryHost() const { return "127.0.0.1:" + std::to_string(canary_up.port()); }
  Json withCanary(Json config) const {
    config["upstream_host"] = "127.0.0.1";
    config["upstream_port"] = canary_up.port();
    return config;
  }
  void addCanary(Json config, const std::string& scope = "route") {
    Json plugin = canary(withCanary(std::move(config)));
    if (scope == "route") plugin["route"] = {{"id", routeId()}};
    add("plugins", plugin);
  }
  // True when the request reached the canary's upstream.
  bool moved(const WireResponse& r) const {
    REQUIRE(r.status == 200);
    return PluginFixture::upstreamHeader(r, "Host") == canaryHost();
  }
};

TEST_CASE("canary schema: Kong's fields, defaults and messages") {
  CHECK(schemaError(Json::object()) ==
        "@entity: at least one of these fields must be non-empty: 'config.upstream_uri', "
        "'config.upstream_host', 'config.upstream_port'");
  CHECK(schemaError({{"percentage", 10}, {"upstream_host", "balancer_a"}}).empty());
  CHECK(schemaError({{"upstream_host", "balancer_a"}, {"duration", 0}}) ==
        "config.duration: value must be greater than 0");
  CHECK(schemaError({{"upstream_host", "balancer_a"}, {"steps", 1}}) ==
        "config.steps: value must be greater than 1");
  CHECK(schemaError({{"upstream_host", "balancer_a"}, {"percentage", 101}}) ==
        "config.percentage: value should be between 0 and 100");
  CHECK(schemaError({{"upstream_host", "balancer_a"}, {"percentage", -1}}) ==
        "config.percentage: value should be between 0 and 100");
  CHECK(schemaError({{"percentage", 10}, {"upstream_port", 100000}}) ==
        "config.upstream_port: value should be between 0 and 65535");
  // typedefs.host, as for a service's host.
  CHECK(schemaError({{"percentage", 10}, {"upstream_host", "htt://example.com"}}) ==
        "config.upstream_host: must not have a port");
  CHECK(schemaError({{"percentage", 10}, {"upstream_host", "bad host"}}) ==
        "config.upstream_host: invalid value: bad host");
  CHECK(schemaError({{"percentage", 10}, {"upstream_uri", "/a b"}}) ==
        "config.upstream_uri: invalid value: /a b");
  CHECK(schemaError({{"percentage", 10}, {"upstream_uri", ""}}) ==
        "config.upstream_uri: length must be at least 1");
  CHECK(schemaError({{"percentage", 10}, {"upstream_uri", "/" + std::string(5000, 'a')}})
            .rfind("config.upstream_uri: ", 0) == 0);
  CHECK(schemaError({{"percentage", 10}, {"upstream_uri", "/\xff"}})
            .rfind("config.upstream_uri: ", 0) == 0);
  CHECK(schemaError({{"hash", "whatever"}, {"upstream_host", "a"}}) ==
        "config.hash: expected one of: consumer, ip, none, allow, deny, header");
  // Conditionals: hash = header needs hash_header; upstream_fallback needs upstream_host.
  CHECK(schemaError({{"hash", "header"}, {"percentage", 10}, {"upstream_host", "a"}}) ==
        "config.hash_header: required field missing");
  CHECK(schemaError({{"upstream_fallback", true}, {"upstream_port", 8080}}) ==
        "config.upstream_host: required field missing");
  CHECK(schemaError({{"hash", "header"}, {"hash_header", "X My"}, {"upstream_host", "a"}})
            .rfind("config.hash_header: ", 0) == 0);
  // steps may not be null unless nothing hashes (allow/deny) or a header decides.
  CHECK(schemaError({{"percentage", 10}, {"upstream_host", "a"}, {"steps", nullptr}}) ==
        "config: config.steps must be a number greater than 1");
  CHECK(schemaError({{"hash", "allow"}, {"upstream_host", "a"}, {"steps", nullptr}}).empty());

  // Defaults; a timed release without a start starts when it is written (Kong's on_write).
  const int64_t before = nowS();
  Json timed = testing::pluginDefaults(canary({{"upstream_host", "a"}}))["config"];
  CHECK(timed["hash"] == "consumer");
  CHECK(timed["duration"] == 3600);
  CHECK(timed["steps"] == 1000);
  CHECK(timed["upstream_fallback"] == false);
  REQUIRE(timed["start"].is_number());
  CHECK(timed["start"].get<int64_t>() >= before);
  CHECK(timed["start"].get<int64_t>() <= nowS());
  // A past start is allowed (Kong 3.4.1+); a fixed percentage or a list needs no start.
  CHECK(schemaError({{"upstream_host", "a"}, {"start", before - 1000}}).empty());
  CHECK(testing::pluginDefaults(canary({{"upstream_host", "a"}, {"percentage", 5}}))["config"]
                               ["start"]
                                   .is_null());
  CHECK(testing::pluginDefaults(canary({{"upstream_host", "a"}, {"hash", "deny"}}))["config"]
                               ["start"]
                                   .is_null());
  // Not on consumers.
  CHECK(testing::pluginSchemaError({{"name", "canary"},
                                    {"consumer", {{"id", "5e0c3a4b-8f8b-4a8e-9a41-0b6a0d7c2f11"}}},
                                    {"config", {{"upstream_host", "a"}}}}) ==
        "consumer: value must be null");
}

TEST_CASE("canary: fixed percentage moves exactly the buckets at or below it (hash header)") {
  CanaryFixture f;
  f.addCanary({{"percentage", 30}, {"steps", 100}, {"hash", "header"}, {"hash_header", "X-User"}});
  REQUIRE(f.apply().ToString() == "OK");
  int moved = 0;
  for (int i = 0; i < 60; ++i) {
    const std::string user = "user-" + std::to_string(i);
    const bool expect = bucket(user, 100) <= 30.0 * 100 / 100 - 1;
    WireResponse r = f.get("/x", "X-User: " + user + "\r\n");
    INFO(user);
    CHECK(f.moved(r) == expect);
    // The same user stays on the same side.
    CHECK(f.moved(f.get("/y", "X-User: " + user + "\r\n")) == expect);
    moved += expect ? 1 : 0;
  }
  CHECK(moved > 0);
  CHECK(moved < 60);
  // Without the header, the client IP decides (Kong's fallback).
  CHECK(f.moved(f.get("/x")) == (bucket("127.0.0.1", 100) <= 29));
}

TEST_CASE("canary: 0 and 100 percent; hash none spreads requests") {
  {
    CanaryFixture f;
    f.addCanary({{"percentage", 0}, {"hash", "none"}});
    REQUIRE(f.apply().ToString() == "OK");
    for (int i = 0; i < 20; ++i) CHECK_FALSE(f.moved(f.get("/x")));
  }
  {
    CanaryFixture f;
    f.addCanary({{"percentage", 100}, {"hash", "none"}});
    REQUIRE(f.apply().ToString() == "OK");
    for (int i = 0; i < 20; ++i) CHECK(f.moved(f.get("/x")));
  }
  {
    CanaryFixture f;
    f.addCanary({{"percentage", 50}, {"steps", 2}, {"hash", "none"}});
    REQUIRE(f.apply().ToString() == "OK");
    int moved = 0;
    for (int i = 0; i < 200; ++i) moved += f.moved(f.get("/x")) ? 1 : 0;
    // Random buckets: both sides get traffic (all 200 on one side: p = 2^-199).
    CHECK(moved > 40);
    CHECK(moved < 160);
  }
}

TEST_CASE("canary: hash consumer keeps each consumer on one side") {
  CanaryFixture f;
  std::vector<std::pair<std::string, std::string>> consumers;  // key, id
  for (int i = 0; i < 30; ++i) {
    Json c = f.add("consumers", {{"username", "c" + std::to_string(i)}});
    const std::string key = "key" + std::to_string(i);
    f.add("keyauth_credentials", {{"consumer", {{"id", c["id"]}}}, {"key", key}});
    consumers.emplace_back(key, c["id"].get<std::string>());
  }
  f.add("plugins", {{"name", "key-auth"}, {"route", {{"id", f.routeId()}}}});
  f.addCanary({{"percentage", 40}, {"steps", 10}});
  REQUIRE(f.apply().ToString() == "OK");
  int moved = 0;
  for (const auto& [key, id] : consumers) {
    const bool expect = bucket(id, 10) <= 40.0 * 10 / 100 - 1;
    INFO(id);
    for (int n = 0; n < 3; ++n) CHECK(f.moved(f.get("/x", "apikey: " + key + "\r\n")) == expect);
    moved += expect ? 1 : 0;
  }
  CHECK(moved > 0);
  CHECK(moved < 30);
}

TEST_CASE("canary: allow and deny by acl groups") {
  for (const char* mode : {"allow", "deny"}) {
    CanaryFixture f;
    Json beta = f.add("consumers", {{"username", "beta"}});
    f.add("keyauth_credentials", {{"consumer", {{"id", beta["id"]}}}, {"key", "kb"}});
    f.add("acls", {{"consumer", {{"id", beta["id"]}}}, {"group", "beta-testers"}});
    Json plain = f.add("consumers", {{"username", "plain"}});
    f.add("keyauth_credentials", {{"consumer", {{"id", plain["id"]}}}, {"key", "kp"}});
    f.add("plugins", {{"name", "key-auth"},
                      {"route", {{"id", f.routeId()}}},
                      {"config", {{"anonymous", plain["id"]}}}});
    f.addCanary({{"hash", mode}, {"groups", {"beta-testers", "other"}}});
    REQUIRE(f.apply().ToString() == "OK");
    const bool allow = std::string(mode) == "allow";
    INFO(mode);
    CHECK(f.moved(f.get("/x", "apikey: kb\r\n")) == allow);
    CHECK(f.moved(f.get("/x", "apikey: kp\r\n")) == !allow);
    CHECK(f.moved(f.get("/x")) == !allow);  // anonymous: in no group
  }
}

TEST_CASE("canary: canary_by_header_name forces always or never") {
  CanaryFixture f;
  f.addCanary({{"percentage", 0}, {"canary_by_header_name", "X-Canary"}});
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(f.moved(f.get("/x", "X-Canary: always\r\n")));
  CHECK_FALSE(f.moved(f.get("/x", "X-Canary: never\r\n")));
  CHECK_FALSE(f.moved(f.get("/x", "X-Canary: maybe\r\n")));  // other values: the rules
  CHECK_FALSE(f.moved(f.get("/x")));
  CanaryFixture g;
  g.addCanary({{"percentage", 100}, {"canary_by_header_name", "X-Canary"}});
  REQUIRE(g.apply().ToString() == "OK");
  CHECK_FALSE(g.moved(g.get("/x", "X-Canary: never\r\n")));
  CHECK(g.moved(g.get("/x")));
}

TEST_CASE("canary: a timed release moves buckets as time passes") {
  const int64_t now = nowS();
  {  // Not started: nothing moves.
    CanaryFixture f;
    f.addCanary({{"start", now + 1000}, {"duration", 100}, {"hash", "none"}});
    REQUIRE(f.apply().ToString() == "OK");
    for (int i = 0; i < 10; ++i) CHECK_FALSE(f.moved(f.get("/x")));
  }
  {  // Finished: everything moves.
    CanaryFixture f;
    f.addCanary({{"start", now - 1000}, {"duration", 100}, {"hash", "none"}});
    REQUIRE(f.apply().ToString() == "OK");
    for (int i = 0; i < 10; ++i) CHECK(f.moved(f.get("/x")));
  }
  {  // A quarter of the way with 4 steps: step 1, so buckets 0 and 1 of 4 move.
    CanaryFixture f;
    f.addCanary({{"start", now - 900}, {"duration", 3600}, {"steps", 4}, {"hash", "header"},
                 {"hash_header", "X-User"}});
    REQUIRE(f.apply().ToString() == "OK");
    for (int i = 0; i < 30; ++i) {
      const std::string user = "u" + std::to_string(i);
      INFO(user);
      CHECK(f.moved(f.get("/x", "X-User: " + user + "\r\n")) == (bucket(user, 4) <= 1));
    }
  }
}

TEST_CASE("canary: upstream_uri replaces the path and keeps the query") {
  PluginFixture f;
  f.add("plugins", canary({{"percentage", 100}, {"upstream_uri", "/v2/orders"}}));
  REQUIRE(f.apply().ToString() == "OK");
  WireResponse r = f.get("/orders?id=7");
  REQUIRE(r.status == 200);
  CHECK(PluginFixture::upstreamRequestLine(r) == "GET /v2/orders?id=7");
}

TEST_CASE("canary: a global instance moves every service's requests (port only)") {
  CanaryFixture f;
  const std::string other = f.addService("other");
  f.addRoute("r2", "/other", other);
  // Only the port moves: the service's host (127.0.0.1) on the canary's port.
  f.add("plugins", canary({{"percentage", 100}, {"upstream_port", f.canary_up.port()}}));
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(f.moved(f.get("/x")));
  CHECK(f.moved(f.get("/other/x")));
  CHECK(f.canary_up.connections() >= 1);
}

TEST_CASE("canary: an upstream entity as the destination, and upstream_fallback") {
  for (bool fallback : {false, true}) {
    INFO("upstream_fallback " << fallback);
    CanaryFixture f;
    // "v2": its only target is down; passive checks mark it unhealthy after one failure.
    Json up = f.add("upstreams",
                    {{"name", "v2"},
                     {"healthchecks",
                      {{"passive", {{"unhealthy", {{"tcp_failures", 1}}}}}}}});
    f.add("targets", {{"upstream", {{"id", up["id"]}}},
                      {"target", "127.0.0.1:" + std::to_string(testing::closedPort())}});
    Json live = f.add("upstreams", {{"name", "v2-live"}});
    f.add("targets", {{"upstream", {{"id", live["id"]}}},
                      {"target", "127.0.0.1:" + std::to_string(f.canary_up.port())}});
    const std::string svc2 = f.addService("svc2");
    const std::string r2 = f.addRoute("r2", "/live", svc2);
    f.add("plugins", {{"name", "canary"},
                      {"route", {{"id", f.routeId()}}},
                      {"config",
                       {{"percentage", 100}, {"upstream_host", "v2"},
                        {"upstream_fallback", fallback}}}});
    f.add("plugins", {{"name", "canary"},
                      {"route", {{"id", r2}}},
                      {"config", {{"percentage", 100}, {"upstream_host", "v2-live"}}}});
    REQUIRE(f.apply().ToString() == "OK");
    // The upstream entity's balancer: its target (Host is the target's, as Kong sends it).
    CHECK(f.moved(f.get("/live/x")));
    // First request: the target is not known to be down yet: 502 either way.
    CHECK(f.get("/x").status == 502);
    WireResponse r = f.get("/x");
    if (fallback) {
      CHECK(r.status == 200);  // back on the service while v2 has no healthy target
      CHECK_FALSE(f.moved(r));
    } else {
      CHECK(r.status == 503);
      CHECK(r.body == R"({"message":"failure to get a peer from the ring-balancer"})");
    }
  }
}

}  // namespace
}  // namespace portico::dp
