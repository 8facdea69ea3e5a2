// response-ratelimiting: schema messages (Kong's 01-schema_spec.lua), and through the real
// proxy: the upstream's X-Kong-Limit consuming named limits, the headers both ways, the 429
// that replaces an upstream response, block_on_first_violation, and the redis policy.
#include <catch2/catch.hpp>

#include <ctime>

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

constexpr int64_t kT = 1780000000;  // 2026-05-28T20:26:40Z

struct RrlFixture : PluginFixture {
  explicit RrlFixture(Json config) {
    add("plugins", {{"name", "response-ratelimiting"},
                    {"route", {{"id", routeId()}}},
                    {"config", std::move(config)}});
    REQUIRE(apply().ToString() == "OK");
  }
  // The upstream answers with `X-Kong-Limit: <limit>` (none when empty).
  WireResponse consume(const std::string& limit, const std::string& extra = "") {
    std::string q;
    for (char c : limit) {
      if (c == '=') q += "%3D";
      else if (c == ' ') q += "%20";
      else if (c == ',') q += "%2C";
      else q += c;
    }
    return get(limit.empty() ? "/response-headers" : "/response-headers?x-kong-limit=" + q, extra);
  }
};

TEST_CASE("response-ratelimiting schema: defaults and Kong's messages") {
  auto err = [](Json config) {
    return testing::pluginSchemaError(
        {{"name", "response-ratelimiting"}, {"config", std::move(config)}});
  };
  CHECK(err({{"limits", {{"video", {{"second", 1}}}}}}) == "");
  CHECK(err({{"limits", {{"video", {{"second", 1}, {"minute", 2}, {"hour", 3}, {"day", 4},
                                    {"month", 5}, {"year", 6}}}}}}) == "");
  CHECK(err(Json::object()) == "config.limits: required field missing");
  CHECK(err({{"limits", Json::object()}}) == "config.limits: length must be at least 1");
  CHECK(err({{"limits", {{"video", {{"seco", 1}}}}}}) == "config.limits.seco: unknown field");
  CHECK(err({{"limits", {{"video", {{"second", nullptr}, {"minute", 1}}}}}}) == "");
  CHECK(err({{"limits", {{"video", {{"second", 2}, {"minute", 1}}}}}}) ==
        "config.limits: the limit for minute(1.0) cannot be lower than the limit for second(2.0)");
  CHECK(err({{"limits", {{"video", {{"second", 1}, {"minute", 2}, {"hour", 3}, {"day", 4},
                                    {"month", 6}, {"year", 5}}}}}}) ==
        "config.limits: the limit for year(5.0) cannot be lower than the limit for month(6.0)");
  CHECK(err({{"limits", {{"second", 10}}}}) == "config.limits: expected a record");
  CHECK(err({{"limits", {{"video", Json::object()}}}}) ==
        "config.limits: at least one of these fields must be non-empty: 'second', 'minute', "
        "'hour', 'day', 'month', 'year'");
  CHECK(err({{"limits", {{"video", {{"second", 0}}}}}}) ==
        "config.limits.second: value must be greater than 0");
  CHECK(err({{"limits", {{"video", {{"second", 10}}}}}, {"policy", "redis"},
             {"redis", {{"port", 6379}}}}) == "config.redis.host: required field missing");
  CHECK(err({{"limits", {{"video", {{"second", 10}}}}}, {"policy", "cluster"}}) ==
        "config.policy: expected one of: local, redis");
  CHECK(err({{"limits", {{"video", {{"second", 10}}}}}, {"limit_by", "path"}}) ==
        "config.limit_by: expected one of: consumer, credential, ip");
  Json d = testing::pluginDefaults(
      {{"name", "response-ratelimiting"}, {"config", {{"limits", {{"video", {{"second", 1}}}}}}}});
  CHECK(d["config"]["header_name"] == "x-kong-limit");
  CHECK(d["config"]["limit_by"] == "consumer");
  CHECK(d["config"]["policy"] == "local");
  CHECK(d["config"]["fault_tolerant"] == true);
  CHECK(d["config"]["block_on_first_violation"] == false);
  CHECK(d["config"]["hide_client_headers"] == false);
  CHECK(d["config"]["redis"]["port"] == 6379);
}

TEST_CASE("response-ratelimiting: the upstream consumes a limit; over it, its answer turns 429") {
  Clock clock(kT);
  RrlFixture f(Json{{"limits", {{"video", {{"second", 6}, {"minute", 20}}}}}});
  for (int i = 1; i <= 3; ++i) {
    WireResponse r = f.consume("video=1");
    INFO("request " << i);
    CHECK(r.status == 200);
    CHECK(r.header("X-RateLimit-Limit-video-second") == "6");
    CHECK(r.header("X-RateLimit-Remaining-video-second") == std::to_string(6 - i));
    CHECK(r.header("X-RateLimit-Limit-video-minute") == "20");
    CHECK(r.header("X-RateLimit-Remaining-video-minute") == std::to_string(20 - i));
    // The upstream learns what is left before it answers; its header never reaches the client.
    CHECK(f.upstreamHeader(r, "X-RateLimit-Remaining-video") == std::to_string(6 - (i - 1)));
    CHECK(r.header("X-Kong-Limit") == "");
  }
  // An answer that consumes nothing does not count.
  WireResponse r = f.consume("");
  CHECK(r.status == 200);
  CHECK(r.header("X-RateLimit-Remaining-video-second") == "3");
  for (int i = 0; i < 3; ++i) CHECK(f.consume("video=1").status == 200);
  r = f.consume("video=1");
  CHECK(r.status == 429);  // Kong: kong.response.exit(429) in header_filter
  CHECK(r.header("X-RateLimit-Remaining-video-second") == "0");
  CHECK(f.upstreamRequestLine(r).rfind("GET /response-headers", 0) == 0);  // the body still follows
  // The 429 counted nothing; a response that consumes nothing still passes.
  r = f.consume("");
  CHECK(r.status == 200);
  CHECK(r.header("X-RateLimit-Remaining-video-second") == "0");
  CHECK(f.upstreamHeader(r, "X-RateLimit-Remaining-video") == "0");
  clock.set(kT + 1);  // the next second
  r = f.consume("video=1");
  CHECK(r.status == 200);
  CHECK(r.header("X-RateLimit-Remaining-video-second") == "5");
  CHECK(r.header("X-RateLimit-Remaining-video-minute") == "13");
}

TEST_CASE("response-ratelimiting: several limits, repeated headers, unknown names") {
  Clock clock(kT);
  RrlFixture f(Json{{"limits", {{"video", {{"second", 12}, {"minute", 24}}}, {"image", {{"second", 6}}}}}});
  WireResponse r = f.consume("video=2, image=1, audio=5, broken, x=1=2");
  CHECK(r.status == 200);
  CHECK(r.header("X-RateLimit-Remaining-video-second") == "10");
  CHECK(r.header("X-RateLimit-Remaining-video-minute") == "22");
  CHECK(r.header("X-RateLimit-Remaining-image-second") == "5");
  CHECK(r.header("X-RateLimit-Remaining-audio-second") == "");
  // Two X-Kong-Limit headers: each is one item (Kong's parse_header on a table).
  r = f.get("/response-headers?x-kong-limit=video%3D2&x-kong-limit=image%3D1");
  CHECK(r.status == 200);
  CHECK(r.header("X-RateLimit-Remaining-video-second") == "8");
  CHECK(r.header("X-RateLimit-Remaining-image-second") == "4");
  r = f.consume("");
  CHECK(f.upstreamHeader(r, "X-RateLimit-Remaining-video") == "8");  // the smallest period
  CHECK(f.upstreamHeader(r, "X-RateLimit-Remaining-image") == "4");
}

TEST_CASE("response-ratelimiting: block_on_first_violation and hide_client_headers") {
  Clock clock(kT);
  RrlFixture f(Json{{"block_on_first_violation", true},
                {"limits", {{"video", {{"second", 6}, {"minute", 12}}}, {"image", {{"second", 4}}}}}});
  CHECK(f.consume("video=2, image=4").status == 200);
  WireResponse r = f.consume("video=2");
  CHECK(r.status == 429);
  CHECK(r.body == R"({"message":"API rate limit exceeded for 'image'"})");
  CHECK(r.body.rfind("GET", 0) == std::string::npos);  // refused before the upstream
  CHECK(r.header("X-RateLimit-Remaining-video-second") == "");

  RrlFixture h(Json{{"hide_client_headers", true}, {"limits", {{"video", {{"second", 6}}}}}});
  r = h.consume("video=1");
  CHECK(r.status == 200);
  CHECK(r.header("X-RateLimit-Remaining-video-second") == "");
  CHECK(r.header("X-RateLimit-Limit-video-second") == "");
  CHECK(r.header("X-Kong-Limit") == "");
  CHECK(h.upstreamHeader(r, "X-RateLimit-Remaining-video") == "6");
}

TEST_CASE("response-ratelimiting redis policy: Kong's keys, and Redis down") {
  Clock clock(kT);
  testing::RedisAddr addr;
  if (testing::testRedis(&addr)) {
    RrlFixture f(Json{{"policy", "redis"},
                  {"redis", {{"host", addr.host}, {"port", addr.port}}},
                  {"limits", {{"video", {{"second", 3}, {"hour", 10}}}}}});
    for (int i = 1; i <= 3; ++i) {
      WireResponse r = f.consume("video=1");
      CHECK(r.status == 200);
      CHECK(r.header("X-RateLimit-Remaining-video-second") == std::to_string(3 - i));
      // The log phase's increment is asynchronous: wait for it before the next request.
      const std::string key = "response-ratelimit:" + f.routeId() + ":" +
                              std::string(ratelimit::kEmptyUuid) + ":127.0.0.1:" +
                              std::to_string(kT * 1000) + ":video:second";
      CHECK(portico::testing::waitFor(
          [&] {
            auto v = testing::redisRun(addr, {"GET", key});
            return v.ok() && (*v)[0].str == std::to_string(i);
          },
          std::chrono::seconds(2)));
    }
    WireResponse r = f.consume("video=1");
    CHECK(r.status == 429);
  } else {
    WARN("PORTICO_TEST_REDIS_ADDR not set: the shared-Redis part is skipped");
  }
  testing::RedisAddr down{"127.0.0.1", testing::closedPort()};
  RrlFixture tolerant(Json{{"policy", "redis"},
                       {"redis", {{"host", down.host}, {"port", down.port}}},
                       {"limits", {{"video", {{"second", 3}}}}}});
  WireResponse r = tolerant.consume("video=1");
  CHECK(r.status == 200);
  CHECK(r.header("X-RateLimit-Remaining-video-second") == "");
  CHECK(r.header("X-Kong-Limit") == "video=1");  // Kong clears it only when it had usage
  RrlFixture strict(Json{{"policy", "redis"},
                     {"fault_tolerant", false},
                     {"redis", {{"host", down.host}, {"port", down.port}}},
                     {"limits", {{"video", {{"second", 3}}}}}});
  r = strict.consume("video=1");
  CHECK(r.status == 500);
  CHECK(r.body == R"({"message":"An unexpected error occurred"})");
}

}  // namespace
}  // namespace portico::dp
