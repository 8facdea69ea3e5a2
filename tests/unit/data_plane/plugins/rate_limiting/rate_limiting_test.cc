// rate-limiting: schema messages, Kong's headers and windows through the real proxy (the
// window edges with an injected clock), every limit_by, the local counters under concurrency
// and expiry, and the redis policy against a real redis-server (shared counters, Redis down,
// hung and restarted).
#include <catch2/catch.hpp>

#include <chrono>
#include <ctime>
#include <thread>

#include "data_plane/ratelimit/local_counters.h"
#include "data_plane/ratelimit/policy.h"
#include "data_plane/ratelimit/windows.h"
#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"
#include "tests/unit/data_plane/plugins/rate_limiting/redis_helpers.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::PluginFixture;
using testing::WireResponse;

int64_t utc(int y, int mo, int d, int h, int mi, int s) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<int64_t>(timegm(&tm));
}

// The test clock for the whole process, back to the real one at the end; counters emptied.
struct Clock {
  explicit Clock(int64_t t) {
    ratelimit::testing::setNow(t);
    ratelimit::testing::clearCounters();
  }
  void set(int64_t t) { ratelimit::testing::setNow(t); }
  ~Clock() {
    ratelimit::testing::setNow(0);
    ratelimit::testing::clearCounters();
  }
};

// rate-limiting on the fixture's route with `config`.
struct RlFixture : PluginFixture {
  explicit RlFixture(Json config, bool global = false) {
    Json plugin = {{"name", "rate-limiting"}, {"config", std::move(config)}};
    if (!global) plugin["route"] = {{"id", routeId()}};
    add("plugins", plugin);
    REQUIRE(apply().ToString() == "OK");
  }
};

TEST_CASE("rate-limiting schema: defaults and Kong's messages") {
  Json d = testing::pluginDefaults({{"name", "rate-limiting"}, {"config", {{"minute", 6}}}});
  const Json& c = d["config"];
  CHECK(c["minute"] == 6);
  CHECK(c["second"].is_null());
  CHECK(c["limit_by"] == "consumer");
  CHECK(c["policy"] == "local");
  CHECK(c["fault_tolerant"] == true);
  CHECK(c["hide_client_headers"] == false);
  CHECK(c["error_code"] == 429);
  CHECK(c["error_message"] == "API rate limit exceeded");
  CHECK(c["sync_rate"] == -1);
  CHECK(c["header_name"].is_null());
  CHECK(c["path"].is_null());
  CHECK(c["redis"] == Json({{"host", nullptr},
                            {"port", 6379},
                            {"timeout", 2000},
                            {"username", nullptr},
                            {"password", nullptr},
                            {"database", 0},
                            {"ssl", false},
                            {"ssl_verify", false},
                            {"server_name", nullptr}}));
  CHECK(d["protocols"] == Json::array({"grpc", "grpcs", "http", "https"}));

  auto err = [](Json config) {
    return testing::pluginSchemaError({{"name", "rate-limiting"}, {"config", std::move(config)}});
  };
  // Kong's 01-schema_spec.lua.
  CHECK(err({{"second", 20}, {"hour", 10}}) ==
        "config: The limit for hour(10.0) cannot be lower than the limit for second(20.0)");
  CHECK(err({{"second", 1}, {"minute", 2}, {"hour", 3}, {"day", 4}, {"month", 6},
             {"year", 5}}) ==
        "config: The limit for year(5.0) cannot be lower than the limit for month(6.0)");
  CHECK(err(Json::object()) ==
        "@entity: at least one of these fields must be non-empty: 'config.second', "
        "'config.minute', 'config.hour', 'config.day', 'config.month', 'config.year'");
  CHECK(err({{"second", 10}, {"limit_by", "header"}}) == "config.header_name: required field missing");
  CHECK(err({{"second", 10}, {"limit_by", "path"}}) == "config.path: required field missing");
  CHECK(err({{"second", 10}, {"limit_by", "path"}, {"path", "/x"}}) == "");
  CHECK(err({{"second", 0}}) == "config.second: value must be greater than 0");
  CHECK(err({{"second", -1.5}}) == "config.second: value must be greater than 0");
  CHECK(err({{"minute", 1}, {"limit_by", "route"}}) ==
        "config.limit_by: expected one of: consumer, credential, ip, service, header, path");
  CHECK(err({{"minute", 1}, {"sync_rate", 10}}) ==
        "config: sync_rate can only be used with the redis policy");
  CHECK(err({{"minute", 1}, {"policy", "redis"}}) == "config.redis.host: required field missing");
  CHECK(err({{"minute", 1}, {"policy", "redis"}, {"redis", {{"host", "r.test"}}},
             {"sync_rate", 0.01}}) == "config: sync_rate must be greater than 0.02, or -1 to disable");
  // Kong refuses `cluster` on a hybrid control plane with the same words: the policy needs a
  // database on every node.
  CHECK(err({{"minute", 1}, {"policy", "cluster"}}) ==
        "config.policy: expected one of: local, redis");
  // What Portico does not do is refused, never served differently.
  CHECK(err({{"minute", 1}, {"policy", "redis"}, {"redis", {{"host", "r.test"}}},
             {"sync_rate", 1}}) ==
        "config: sync_rate: Portico's redis policy counts every request in Redis; only -1 is "
        "supported");
  CHECK(err({{"minute", 1}, {"policy", "redis"},
             {"redis", {{"host", "r.test"}, {"ssl", true}, {"ssl_verify", true},
                        {"server_name", "redis.example.test"}}}}) == "");
  CHECK(err({{"minute", 1}, {"redis", {{"server_name", "bad name"}}}}).rfind("config.redis.server_name: ", 0) == 0);
  CHECK(err({{"minute", 1}, {"header_name", "bad header"}}) ==
        "config.header_name: bad header name 'bad header', allowed characters are A-Z, a-z, 0-9, "
        "'_', and '-'");
  CHECK(err({{"minute", 1}, {"redis", {{"port", 70000}}}}) ==
        "config.redis.port: value should be between 0 and 65535");

  // The deprecated redis_* fields land in the redis record.
  Json legacy = testing::pluginDefaults(
      {{"name", "rate-limiting"},
       {"config",
        {{"minute", 100}, {"policy", "redis"}, {"redis_host", "custom-host.example.test"},
         {"redis_port", 55000}, {"redis_password", "testX"}, {"redis_database", 1},
         {"redis_timeout", 1100}}}});
  CHECK(legacy["config"]["redis"]["host"] == "custom-host.example.test");
  CHECK(legacy["config"]["redis"]["port"] == 55000);
  CHECK(legacy["config"]["redis"]["password"] == "testX");
  CHECK(legacy["config"]["redis"]["database"] == 1);
  CHECK(legacy["config"]["redis"]["timeout"] == 1100);
  CHECK(legacy["config"]["redis_host"].is_null());
}

TEST_CASE("rate-limiting: Kong's headers for each request, then 429 (minute=6, hour=99999)") {
  const int64_t t = utc(2026, 3, 10, 12, 30, 30);  // 30 s into the minute
  Clock clock(t);
  RlFixture f({{"minute", 6}, {"hour", 99999}, {"limit_by", "ip"}});
  for (int i = 1; i <= 6; ++i) {
    WireResponse r = f.get("/request");
    INFO("request " << i);
    CHECK(r.status == 200);
    CHECK(r.header("X-RateLimit-Limit-Minute") == "6");
    CHECK(r.header("X-RateLimit-Remaining-Minute") == std::to_string(6 - i));
    CHECK(r.header("X-RateLimit-Limit-Hour") == "99999");
    CHECK(r.header("X-RateLimit-Remaining-Hour") == std::to_string(99999 - i));
    CHECK(r.header("RateLimit-Limit") == "6");
    CHECK(r.header("RateLimit-Remaining") == std::to_string(6 - i));
    CHECK(r.header("RateLimit-Reset") == "30");
    CHECK(r.header("Retry-After") == "");
  }
  WireResponse r = f.get("/request");
  CHECK(r.status == 429);
  CHECK(r.body == R"({"message":"API rate limit exceeded"})");
  CHECK(r.header("X-RateLimit-Limit-Minute") == "6");
  CHECK(r.header("X-RateLimit-Remaining-Minute") == "0");
  // The blocked request counts for nothing: the hour is not decremented.
  CHECK(r.header("X-RateLimit-Remaining-Hour") == "99993");
  CHECK(r.header("RateLimit-Limit") == "6");
  CHECK(r.header("RateLimit-Remaining") == "0");
  CHECK(r.header("RateLimit-Reset") == "30");
  CHECK(r.header("Retry-After") == "30");
  CHECK(r.body.rfind("GET", 0) == std::string::npos);  // never proxied (no echo)

  // Later in the same minute the reset shrinks; the next minute starts over.
  clock.set(t + 20);
  r = f.get("/request");
  CHECK(r.status == 429);
  CHECK(r.header("Retry-After") == "10");
  clock.set(t + 30);
  r = f.get("/request");
  CHECK(r.status == 200);
  CHECK(r.header("X-RateLimit-Remaining-Minute") == "5");
  CHECK(r.header("X-RateLimit-Remaining-Hour") == "99992");
  CHECK(r.header("RateLimit-Reset") == "60");
}

TEST_CASE("rate-limiting: windows are fixed and calendar aligned (injected clock)") {
  SECTION("second") {
    const int64_t t = utc(2026, 5, 1, 8, 0, 0);
    Clock clock(t);
    RlFixture f({{"second", 1}, {"limit_by", "ip"}});
    CHECK(f.get("/").status == 200);
    WireResponse r = f.get("/");
    CHECK(r.status == 429);
    CHECK(r.header("Retry-After") == "1");
    clock.set(t + 1);
    CHECK(f.get("/").status == 200);
  }
  SECTION("minute: the last second of a minute, then the first of the next") {
    const int64_t t = utc(2026, 5, 1, 8, 14, 59);
    Clock clock(t);
    RlFixture f({{"minute", 2}, {"limit_by", "ip"}});
    WireResponse r = f.get("/");
    CHECK(r.header("RateLimit-Reset") == "1");
    CHECK(f.get("/").status == 200);
    r = f.get("/");
    CHECK(r.status == 429);
    CHECK(r.header("Retry-After") == "1");
    clock.set(t + 1);  // 08:15:00: a sliding window would still block here
    r = f.get("/");
    CHECK(r.status == 200);
    CHECK(r.header("X-RateLimit-Remaining-Minute") == "1");
    CHECK(r.header("RateLimit-Reset") == "60");
  }
  SECTION("hour and day") {
    const int64_t t = utc(2026, 5, 1, 23, 59, 0);
    Clock clock(t);
    RlFixture f({{"hour", 1}, {"day", 1}, {"limit_by", "ip"}});
    WireResponse r = f.get("/");
    CHECK(r.status == 200);
    // Both at 0: the tie goes to the longer window (the day), whose reset is 60 s away.
    CHECK(r.header("RateLimit-Limit") == "1");
    CHECK(r.header("RateLimit-Remaining") == "0");
    CHECK(r.header("RateLimit-Reset") == "60");
    r = f.get("/");
    CHECK(r.status == 429);
    CHECK(r.header("Retry-After") == "60");
    clock.set(t + 60);  // 00:00:00: a new hour and a new day
    r = f.get("/");
    CHECK(r.status == 200);
    CHECK(r.header("RateLimit-Reset") == "86400");
  }
  SECTION("month: 30-day reset arithmetic, calendar boundary") {
    const int64_t t = utc(2026, 1, 31, 23, 59, 59);
    Clock clock(t);
    RlFixture f({{"month", 2}, {"limit_by", "ip"}});
    WireResponse r = f.get("/");
    CHECK(r.status == 200);
    // Kong: max(1, 2592000 - seconds since Jan 1st): 31 days in, the reset says 1.
    CHECK(r.header("RateLimit-Reset") == "1");
    CHECK(f.get("/").status == 200);
    CHECK(f.get("/").status == 429);
    clock.set(t + 1);  // February 1st
    r = f.get("/");
    CHECK(r.status == 200);
    CHECK(r.header("X-RateLimit-Remaining-Month") == "1");
    CHECK(r.header("RateLimit-Reset") == "2592000");
    clock.set(utc(2026, 2, 11, 0, 0, 0));
    r = f.get("/");
    CHECK(r.status == 200);
    CHECK(r.header("RateLimit-Reset") == std::to_string(2592000 - 10 * 86400));
  }
  SECTION("year") {
    const int64_t t = utc(2025, 12, 31, 23, 59, 59);
    Clock clock(t);
    RlFixture f({{"year", 1}, {"limit_by", "ip"}});
    CHECK(f.get("/").status == 200);
    WireResponse r = f.get("/");
    CHECK(r.status == 429);
    CHECK(r.header("X-RateLimit-Limit-Year") == "1");
    CHECK(r.header("Retry-After") == "1");  // 365 days minus 364 days 23:59:59, at least 1
    clock.set(t + 1);
    r = f.get("/");
    CHECK(r.status == 200);
    CHECK(r.header("RateLimit-Reset") == "31536000");
  }
}

TEST_CASE("rate-limiting: several limits, RateLimit-* shows the fewest remaining") {
  const int64_t t = utc(2026, 6, 1, 10, 0, 10);
  Clock clock(t);
  RlFixture f({{"second", 2}, {"minute", 5}, {"limit_by", "ip"}});
  WireResponse r = f.get("/");
  CHECK(r.header("X-RateLimit-Remaining-Second") == "1");
  CHECK(r.header("X-RateLimit-Remaining-Minute") == "4");
  CHECK(r.header("RateLimit-Limit") == "2");
  CHECK(r.header("RateLimit-Remaining") == "1");
  CHECK(r.header("RateLimit-Reset") == "1");
  CHECK(f.get("/").status == 200);
  r = f.get("/");
  CHECK(r.status == 429);
  CHECK(r.header("X-RateLimit-Remaining-Second") == "0");
  CHECK(r.header("X-RateLimit-Remaining-Minute") == "3");
  CHECK(r.header("Retry-After") == "1");
  clock.set(t + 1);
  for (int i = 0; i < 2; ++i) CHECK(f.get("/").status == 200);
  r = f.get("/");  // the second's limit again
  CHECK(r.status == 429);
  clock.set(t + 2);
  r = f.get("/");
  CHECK(r.status == 200);
  CHECK(r.header("X-RateLimit-Remaining-Minute") == "0");
  CHECK(r.header("RateLimit-Limit") == "5");  // the minute has fewer left now
  CHECK(r.header("RateLimit-Reset") == "48");
  r = f.get("/");
  CHECK(r.status == 429);
  CHECK(r.header("Retry-After") == "48");
}

TEST_CASE("rate-limiting: limit_by and Kong's fallback to the client IP") {
  Clock clock(utc(2026, 6, 2, 9, 0, 0));
  SECTION("consumer (key-auth runs first), credential") {
    for (const char* by : {"consumer", "credential"}) {
      PluginFixture f;
      Json bob = f.add("consumers", {{"username", "bob"}});
      Json amy = f.add("consumers", {{"username", "amy"}});
      f.add("keyauth_credentials", {{"consumer", {{"id", bob["id"]}}}, {"key", "bob-1"}});
      f.add("keyauth_credentials", {{"consumer", {{"id", bob["id"]}}}, {"key", "bob-2"}});
      f.add("keyauth_credentials", {{"consumer", {{"id", amy["id"]}}}, {"key", "amy-1"}});
      f.add("plugins", {{"name", "key-auth"}, {"route", {{"id", f.routeId()}}}});
      f.add("plugins", {{"name", "rate-limiting"},
                        {"route", {{"id", f.routeId()}}},
                        {"config", {{"minute", 2}, {"limit_by", by}}}});
      REQUIRE(f.apply().ToString() == "OK");
      INFO("limit_by " << by);
      CHECK(f.get("/", "apikey: bob-1\r\n").status == 200);
      CHECK(f.get("/", "apikey: bob-1\r\n").status == 200);
      CHECK(f.get("/", "apikey: bob-1\r\n").status == 429);
      // Bob's other key: the same consumer, another credential.
      CHECK(f.get("/", "apikey: bob-2\r\n").status == (std::string(by) == "consumer" ? 429 : 200));
      CHECK(f.get("/", "apikey: amy-1\r\n").status == 200);
      CHECK(f.get("/").status == 401);  // key-auth answers first
    }
  }
  SECTION("consumer without an authenticated consumer: per IP") {
    RlFixture f(Json{{"minute", 1}});
    CHECK(f.get("/").status == 200);
    CHECK(f.get("/").status == 429);
  }
  SECTION("header, and the IP when the header is absent") {
    RlFixture f({{"minute", 1}, {"limit_by", "header"}, {"header_name", "X-Tenant"}});
    CHECK(f.get("/", "X-Tenant: a\r\n").status == 200);
    CHECK(f.get("/", "X-Tenant: a\r\n").status == 429);
    CHECK(f.get("/", "X-Tenant: b\r\n").status == 200);
    CHECK(f.get("/").status == 200);  // 127.0.0.1
    CHECK(f.get("/").status == 429);
    CHECK(f.get("/", "X-Tenant: c\r\n").status == 200);
  }
  SECTION("path: only the configured path, normalized; other paths per IP") {
    RlFixture f({{"minute", 1}, {"limit_by", "path"}, {"path", "/a"}});
    CHECK(f.get("/a").status == 200);
    CHECK(f.get("/x/../a").status == 429);  // kong.request.get_path() is normalized
    CHECK(f.get("/b").status == 200);       // the IP's counter
    CHECK(f.get("/c").status == 429);
  }
  SECTION("service: routes of one service share, another service does not") {
    PluginFixture f;
    const std::string other = f.addService("other");
    f.addRoute("r2", "/two", f.serviceId());
    f.addRoute("r3", "/three", other);
    f.add("plugins", {{"name", "rate-limiting"}, {"config", {{"minute", 1}, {"limit_by", "service"}}}});
    REQUIRE(f.apply().ToString() == "OK");
    CHECK(f.get("/one").status == 200);
    CHECK(f.get("/two").status == 429);
    CHECK(f.get("/three").status == 200);
  }
}

TEST_CASE("rate-limiting: counters belong to the plugin's scope") {
  Clock clock(utc(2026, 6, 3, 9, 0, 0));
  // A global instance keys its counters with no route or service: every route shares them.
  PluginFixture g;
  g.addRoute("r2", "/two", g.serviceId());
  g.add("plugins", {{"name", "rate-limiting"}, {"config", {{"minute", 2}, {"limit_by", "ip"}}}});
  REQUIRE(g.apply().ToString() == "OK");
  CHECK(g.get("/one").status == 200);
  CHECK(g.get("/two").status == 200);
  CHECK(g.get("/one").status == 429);
  // Route instances count apart.
  PluginFixture f;
  const std::string r2 = f.addRoute("r2", "/two", f.serviceId());
  for (const std::string& route : {f.routeId(), r2}) {
    f.add("plugins", {{"name", "rate-limiting"},
                      {"route", {{"id", route}}},
                      {"config", {{"minute", 1}, {"limit_by", "ip"}}}});
  }
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(f.get("/one").status == 200);
  CHECK(f.get("/two").status == 200);
  CHECK(f.get("/one").status == 429);
  CHECK(f.get("/two").status == 429);
  // A new config (snapshot) keeps the counts: they live in the process, not in the config.
  f.add("services", {{"name", "unrelated"}, {"url", "http://127.0.0.1:9"}});
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(f.get("/one").status == 429);
}

TEST_CASE("rate-limiting: hide_client_headers, error_code and error_message") {
  Clock clock(utc(2026, 6, 4, 9, 0, 0));
  RlFixture f({{"minute", 1},
               {"limit_by", "ip"},
               {"hide_client_headers", true},
               {"error_code", 503},
               {"error_message", "slow down"}});
  WireResponse r = f.get("/");
  CHECK(r.status == 200);
  for (const char* h : {"X-RateLimit-Limit-Minute", "X-RateLimit-Remaining-Minute",
                        "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}) {
    CHECK(r.header(h) == "");
  }
  r = f.get("/");
  CHECK(r.status == 503);
  CHECK(r.body == R"({"message":"slow down"})");
  CHECK(r.header("Retry-After") == "");
  CHECK(r.header("RateLimit-Remaining") == "");
  // kong.response.error() refuses a status below 400: Kong answers 500.
  RlFixture low({{"minute", 1}, {"limit_by", "ip"}, {"error_code", 200}});
  CHECK(low.get("/").status == 200);
  r = low.get("/");
  CHECK(r.status == 500);
  CHECK(r.body == R"({"message":"An unexpected error occurred"})");
  // A fractional limit prints as Lua does.
  RlFixture frac({{"minute", 2.5}, {"limit_by", "ip"}});
  r = frac.get("/");
  CHECK(r.header("X-RateLimit-Limit-Minute") == "2.5");
  CHECK(r.header("X-RateLimit-Remaining-Minute") == "1.5");
}

TEST_CASE("local counters: exact under concurrent workers; windows expire off the hot path") {
  Clock clock(utc(2026, 6, 5, 9, 0, 0));
  ratelimit::LocalCounters& counters = ratelimit::LocalCounters::instance();
  const int64_t now = ratelimit::nowSeconds();
  const ratelimit::Timestamps ts = ratelimit::timestamps(now);
  const uint64_t key = ratelimit::LocalCounters::key("t", "r", "s", "id", "", ratelimit::Period::kMinute,
                                                     ts[ratelimit::Period::kMinute]);
  // 8 threads add 20,000 each; with a limit of 50,000 (the plugin's add-then-take-back),
  // exactly 50,000 pass.
  std::atomic<int> passed{0};
  std::atomic<int> missed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        ratelimit::LocalCounters::Scope scope(counters);
        int64_t before = 0;
        if (!scope.add(ratelimit::Period::kMinute, ts[ratelimit::Period::kMinute], key, 1,
                       &before)) {
          missed.fetch_add(1);
        }
        if (before < 50000) {
          passed.fetch_add(1);
        } else {
          scope.add(ratelimit::Period::kMinute, ts[ratelimit::Period::kMinute], key, -1, &before);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(missed.load() == 0);
  CHECK(passed.load() == 50000);
  {
    ratelimit::LocalCounters::Scope scope(counters);
    int64_t v = 0;
    REQUIRE(scope.get(ratelimit::Period::kMinute, ts[ratelimit::Period::kMinute], key, &v));
    CHECK(v == 50000);
  }
  // Two minutes on, the sweeper frees the old window's table: the count is gone.
  const size_t in_use = counters.tablesInUse();
  CHECK(in_use >= 1);
  counters.sweepForTesting(now + 120);
  CHECK(counters.tablesInUse() < in_use);
  {
    ratelimit::LocalCounters::Scope scope(counters);
    int64_t v = -1;
    REQUIRE(scope.get(ratelimit::Period::kMinute, ts[ratelimit::Period::kMinute], key, &v));
    CHECK(v == 0);
  }
}

// ---- The redis policy against a real redis-server.

Json redisConfig(const testing::RedisAddr& a, Json extra) {
  Json c = {{"policy", "redis"}, {"redis", {{"host", a.host}, {"port", a.port}}}};
  for (auto it = extra.begin(); it != extra.end(); ++it) c[it.key()] = it.value();
  return c;
}

TEST_CASE("rate-limiting redis policy: Kong's keys and counts in a real Redis") {
  testing::RedisAddr addr;
  if (!testing::testRedis(&addr)) {
    WARN("PORTICO_TEST_REDIS_ADDR not set (tests/run.sh starts a redis-server): skipped");
    return;
  }
  const int64_t t = utc(2026, 6, 6, 9, 0, 20);
  Clock clock(t);
  RlFixture f(redisConfig(addr, {{"minute", 3}, {"hour", 100}, {"limit_by", "ip"}}));
  for (int i = 1; i <= 3; ++i) {
    WireResponse r = f.get("/");
    CHECK(r.status == 200);
    CHECK(r.header("X-RateLimit-Remaining-Minute") == std::to_string(3 - i));
    CHECK(r.header("X-RateLimit-Remaining-Hour") == std::to_string(100 - i));
    CHECK(r.header("RateLimit-Reset") == "40");
  }
  WireResponse r = f.get("/");
  CHECK(r.status == 429);
  CHECK(r.body == R"({"message":"API rate limit exceeded"})");
  CHECK(r.header("Retry-After") == "40");
  // Kong's key (the plugin's route and service: a route instance has no service) and script:
  // the blocked request was counted too (INCR before the decision).
  const std::string key = "ratelimit:" + f.routeId() + ":" + std::string(ratelimit::kEmptyUuid) +
                          ":127.0.0.1:" +
                          std::to_string((t - 20) * 1000) + ":minute";
  auto v = testing::redisRun(addr, {"GET", key});
  REQUIRE(v.ok());
  CHECK((*v)[0].str == "4");
  auto ttl = testing::redisRun(addr, {"TTL", key});
  REQUIRE(ttl.ok());
  CHECK((*ttl)[0].integer > 0);
  CHECK((*ttl)[0].integer <= 60);
}

TEST_CASE("rate-limiting redis policy: two proxies enforce one shared limit") {
  testing::RedisAddr addr;
  if (!testing::testRedis(&addr)) {
    WARN("PORTICO_TEST_REDIS_ADDR not set: skipped");
    return;
  }
  Clock clock(utc(2026, 6, 6, 10, 0, 0));
  // Global instances (no route or service in the keys) on two proxies, one tenant header.
  const std::string tenant = "tenant-" + std::to_string(std::time(nullptr)) + "-" +
                             std::to_string(::getpid());
  Json conf = redisConfig(addr, {{"minute", 50}, {"limit_by", "header"}, {"header_name", "X-T"}});
  RlFixture a(conf, /*global=*/true);
  RlFixture b(conf, /*global=*/true);
  int passed = 0;
  for (int i = 0; i < 100; ++i) {
    WireResponse r = (i % 2 == 0 ? a : b).get("/", "X-T: " + tenant + "\r\n");
    passed += r.status == 200 ? 1 : 0;
  }
  CHECK(passed == 50);
}

TEST_CASE("rate-limiting redis policy: Redis down, with and without fault_tolerant") {
  Clock clock(utc(2026, 6, 6, 11, 0, 0));
  testing::RedisAddr down{"127.0.0.1", testing::closedPort()};
  const uint64_t failures = ratelimit::policyStats().failures_total.load();
  RlFixture tolerant(redisConfig(down, {{"minute", 1}, {"limit_by", "ip"}}));
  RlFixture strict(redisConfig(down, {{"minute", 1}, {"limit_by", "ip"}, {"fault_tolerant", false}}));
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    WireResponse r = tolerant.get("/");
    CHECK(r.status == 200);  // passes, unlimited, without headers
    CHECK(r.header("X-RateLimit-Limit-Minute") == "");
    r = strict.get("/");
    CHECK(r.status == 500);
    CHECK(r.body == R"({"message":"An unexpected error occurred"})");
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  }
  CHECK(ratelimit::policyStats().failures_total.load() >= failures + 6);
  // Counted where operators look: the DP's /metrics.
  const std::string metrics = tolerant.metrics();
  for (const char* family : {"portico_dp_ratelimit_usage_failures_total",
                             "portico_dp_ratelimit_fault_tolerant_passes_total",
                             "portico_dp_ratelimit_redis_errors_total",
                             "portico_dp_ratelimit_redis_connect_failures_total"}) {
    INFO(family);
    CHECK(metrics.find(std::string("\n") + family + " ") != std::string::npos);
  }
  CHECK(metrics.find("\nportico_dp_ratelimit_usage_failures_total 0\n") == std::string::npos);
}

TEST_CASE("rate-limiting redis policy: a Redis that never answers costs the timeout, no more") {
  Clock clock(utc(2026, 6, 6, 12, 0, 0));
  testing::SilentServer hung;
  testing::RedisAddr addr{"127.0.0.1", hung.port()};
  Json conf = redisConfig(addr, {{"minute", 1}, {"limit_by", "ip"}});
  conf["redis"]["timeout"] = 300;
  RlFixture tolerant(conf);
  conf["fault_tolerant"] = false;
  RlFixture strict(conf);
  auto start = std::chrono::steady_clock::now();
  CHECK(tolerant.get("/").status == 200);
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= std::chrono::milliseconds(250));
  CHECK(took < std::chrono::seconds(2));
  start = std::chrono::steady_clock::now();
  WireResponse r = strict.get("/");
  CHECK(r.status == 500);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  // The proxy's only worker serves other requests while one is parked on Redis.
  strict.addRoute("free", "/free", strict.serviceId());
  REQUIRE(strict.apply().ToString() == "OK");
  int slow_status = 0;
  std::thread slow([&] { slow_status = strict.get("/").status; });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  start = std::chrono::steady_clock::now();
  CHECK(strict.get("/free").status == 200);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(200));
  slow.join();
  CHECK(slow_status == 500);
}

TEST_CASE("rate-limiting redis policy: reconnects by itself after Redis restarts") {
  if (!testing::PrivateRedis::available()) {
    WARN("redis-server not installed: skipped");
    return;
  }
  Clock clock(utc(2026, 6, 6, 13, 0, 0));
  testing::PrivateRedis redis;
  REQUIRE(redis.start());
  RlFixture f(redisConfig(redis.addr(), {{"minute", 100}, {"limit_by", "ip"}, {"fault_tolerant", false}}));
  WireResponse r = f.get("/");
  CHECK(r.status == 200);
  CHECK(r.header("X-RateLimit-Remaining-Minute") == "99");
  redis.stop();
  CHECK(f.get("/").status == 500);
  REQUIRE(redis.start());
  // No request needed to trigger it: the client retries in the background (1 s backoff at
  // most), then requests are counted again (the restarted server starts from 0).
  CHECK(portico::testing::waitFor([&] { return f.get("/").status == 200; },
                                  std::chrono::seconds(5)));
  r = f.get("/");
  CHECK(r.status == 200);
  CHECK(r.header("X-RateLimit-Limit-Minute") == "100");
}

TEST_CASE("rate-limiting redis policy: AUTH and SELECT as Kong (password, database)") {
  if (!testing::PrivateRedis::available()) {
    WARN("redis-server not installed: skipped");
    return;
  }
  const int64_t t = utc(2026, 6, 6, 14, 0, 0);
  Clock clock(t);
  testing::PrivateRedis redis({"--requirepass", "s3cret"});
  REQUIRE(redis.start());
  Json conf = redisConfig(redis.addr(), {{"minute", 5}, {"limit_by", "ip"}, {"fault_tolerant", false}});
  conf["redis"]["password"] = "s3cret";
  conf["redis"]["database"] = 3;
  RlFixture f(conf);
  WireResponse r = f.get("/");
  CHECK(r.status == 200);
  CHECK(r.header("X-RateLimit-Remaining-Minute") == "4");
  const std::string key = "ratelimit:" + f.routeId() + ":" + std::string(ratelimit::kEmptyUuid) +
                          ":127.0.0.1:" + std::to_string(t * 1000) + ":minute";
  auto in3 = testing::redisRun(redis.addr(), {"GET", key}, "s3cret", 3);
  REQUIRE(in3.ok());
  CHECK((*in3)[0].str == "1");
  auto in0 = testing::redisRun(redis.addr(), {"EXISTS", key}, "s3cret", 0);
  REQUIRE(in0.ok());
  CHECK((*in0)[0].integer == 0);
  // A wrong password: Redis refuses, the request gets Kong's 500 (fault_tolerant off).
  Json bad = conf;
  bad["redis"]["password"] = "wrong";
  RlFixture b(bad);
  r = b.get("/");
  CHECK(r.status == 500);
}

TEST_CASE("redis client: a batch sent before its last holder goes still gets its answer") {
  testing::RedisAddr addr;
  if (!testing::testRedis(&addr)) {
    WARN("PORTICO_TEST_REDIS_ADDR not set: skipped");
    return;
  }
  ratelimit::RedisOptions o;
  o.host = addr.host;
  o.port = static_cast<uint16_t>(addr.port);
  o.timeout_ms = 1500;  // a pool key of its own: this client is not shared
  for (int i = 0; i < 20; ++i) {
    auto client = ratelimit::RedisClient::get(o);
    std::string batch;
    ratelimit::appendRedisCommand({"PING"}, &batch);
    auto promise = std::make_shared<std::promise<absl::StatusOr<ratelimit::RedisReplies>>>();
    auto future = promise->get_future();
    client->execute(std::move(batch), 1,
                    [promise](absl::StatusOr<ratelimit::RedisReplies> r) { promise->set_value(r); });
    client.reset();  // the config went away (response-ratelimiting's log-phase increments)
    auto r = future.get();
    REQUIRE(r.ok());
    CHECK((*r)[0].str == "PONG");
  }
}

TEST_CASE("rate-limiting redis policy: TLS (ssl, ssl_verify, server_name)") {
  if (!testing::PrivateRedis::available()) {
    WARN("redis-server not installed: skipped");
    return;
  }
  char tmpl[] = "/tmp/portico-redis-tls-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  auto run = [](const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; };
  REQUIRE(run("cd " + dir + " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
              "-nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=portico-test-ca"));
  REQUIRE(run("cd " + dir + " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
              "-nodes -keyout srv.key -out srv.csr -subj /CN=redis.test"));
  REQUIRE(run("cd " + dir + " && printf 'subjectAltName=DNS:redis.test\\n' > ext.cnf && "
              "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
              "-out srv.pem -days 2 -extfile ext.cnf"));
  Clock clock(utc(2026, 6, 6, 15, 0, 0));
  testing::PrivateRedis redis;
  redis.setArgs({"--port", "0", "--tls-port", std::to_string(redis.port()), "--tls-cert-file",
                 dir + "/srv.pem", "--tls-key-file", dir + "/srv.key", "--tls-ca-cert-file",
                 dir + "/ca.pem", "--tls-auth-clients", "no"});
  REQUIRE(redis.start());
  auto conf = [&](bool verify, const std::string& name, int timeout) {
    Json c = redisConfig(redis.addr(), {{"minute", 5}, {"limit_by", "ip"}, {"fault_tolerant", false}});
    c["redis"]["ssl"] = true;
    c["redis"]["ssl_verify"] = verify;
    c["redis"]["server_name"] = name;
    c["redis"]["timeout"] = timeout;
    return c;
  };
  // Encrypted, not verified.
  RlFixture plain(conf(false, "redis.test", 1000));
  WireResponse r = plain.get("/");
  CHECK(r.status == 200);
  CHECK(r.header("X-RateLimit-Remaining-Minute") == "4");
  // Verified against the system's CAs, which do not know this one: refused (500).
  RlFixture untrusted(conf(true, "redis.test", 1001));
  CHECK(untrusted.get("/").status == 500);
  // Trusted (OpenSSL's SSL_CERT_FILE), right name: counted; a wrong name: refused.
  ::setenv("SSL_CERT_FILE", (dir + "/ca.pem").c_str(), 1);
  RlFixture trusted(conf(true, "redis.test", 1002));
  RlFixture wrong_name(conf(true, "other.test", 1003));
  ::unsetenv("SSL_CERT_FILE");
  r = trusted.get("/");
  CHECK(r.status == 200);
  CHECK(r.header("X-RateLimit-Remaining-Minute") == "4");
  CHECK(wrong_name.get("/").status == 500);
  run("rm -rf " + dir);
}

}  // namespace
}  // namespace portico::dp
