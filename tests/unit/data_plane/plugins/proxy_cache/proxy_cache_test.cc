// proxy-cache: schema checks, then Miss/Hit/Refresh/Bypass through the real proxy. The
// scripted upstream's /reply answers with the query's headers and X-Serial (its reply count),
// so a Hit shows the serial of the response it replays.
#include <chrono>
#include <regex>
#include <string>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::PluginFixture;
using testing::WireResponse;

std::string schemaError(const Json& config) {
  return testing::pluginSchemaError({{"name", "proxy-cache"}, {"config", config}});
}

Json withDefaults(Json config) {
  config["strategy"] = "memory";
  return config;
}

struct Proxy {
  explicit Proxy(const Json& config = Json::object()) {
    f.add("plugins", {{"name", "proxy-cache"}, {"config", withDefaults(config)}});
    REQUIRE(f.apply().ToString() == "OK");
  }
  PluginFixture f;
};

constexpr char kJson[] = "Content-Type=application/json";

TEST_CASE("proxy-cache schema") {
  const Json d = testing::pluginDefaults(
      {{"name", "proxy-cache"}, {"config", {{"strategy", "memory"}}}})["config"];
  CHECK(d["response_code"] == Json({200, 301, 404}));
  CHECK(d["request_method"] == Json({"GET", "HEAD"}));
  CHECK(d["content_type"] == Json({"text/plain", "application/json"}));
  CHECK(d["cache_ttl"] == 300);
  CHECK(d["cache_control"] == false);
  CHECK(d["memory"]["dictionary_name"] == "kong_db_cache");
  CHECK(d["response_headers"] ==
        Json({{"age", true}, {"X-Cache-Status", true}, {"X-Cache-Key", true}}));
  CHECK(schemaError(Json::object()) == "config.strategy: required field missing");
  CHECK(schemaError({{"strategy", "redis"}}) == "config.strategy: expected one of: memory");
  CHECK(schemaError(withDefaults({{"cache_ttl", 0}})) ==
        "config.cache_ttl: value must be greater than 0");
  CHECK(schemaError(withDefaults({{"request_method", {"DELETE"}}})) ==
        "config.request_method.1: expected one of: HEAD, GET, POST, PATCH, PUT");
  CHECK(schemaError(withDefaults({{"response_code", {99}}})) ==
        "config.response_code.1: value should be between 100 and 900");
  CHECK(schemaError(withDefaults({{"response_code", Json::array()}})) ==
        "config.response_code: length must be at least 1");
  CHECK(schemaError(withDefaults({{"memory", {{"dictionary_name", "other"}}}})) ==
        "@entity: missing shared dict 'other'");
}

TEST_CASE("proxy-cache: Miss, then Hit from memory with Age and the same key") {
  Proxy p;
  const std::string target = std::string("/reply?") + kJson + "&X-Up=1";
  const WireResponse miss = p.f.get(target);
  REQUIRE(miss.status == 200);
  CHECK(miss.header("X-Cache-Status") == "Miss");
  const std::string key = miss.header("X-Cache-Key");
  CHECK(std::regex_match(key, std::regex("^[0-9a-f]{64}$")));
  CHECK(miss.header("Age").empty());
  const WireResponse hit = p.f.get(target);
  REQUIRE(hit.status == 200);
  CHECK(hit.header("X-Cache-Status") == "Hit");
  CHECK(hit.header("X-Cache-Key") == key);
  CHECK(hit.header("X-Serial") == miss.header("X-Serial"));  // the upstream was not asked
  CHECK(hit.header("X-Up") == "1");
  CHECK(hit.header("Content-Type") == "application/json");
  CHECK(hit.header("Age") == "0");
  CHECK(hit.body == miss.body);
  // Another route-level key: a different path, or the query argument changed.
  CHECK(p.f.get(target + "&b=2").header("X-Cache-Status") == "Miss");
  // Query arguments in another order are the same key (sorted, as Kong does).
  const WireResponse a = p.f.get(std::string("/reply?b=2&a=1&") + kJson);
  const WireResponse b = p.f.get(std::string("/reply?") + kJson + "&a=1&b=2");
  CHECK(a.header("X-Cache-Status") == "Miss");
  CHECK(b.header("X-Cache-Status") == "Hit");
  CHECK(a.header("X-Cache-Key") == b.header("X-Cache-Key"));
}

TEST_CASE("proxy-cache: Bypass for unlisted methods, statuses and content types") {
  Proxy p;
  const WireResponse post = p.f.send(std::string("POST /reply?") + kJson +
                                     " HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  CHECK(post.header("X-Cache-Status") == "Bypass");
  CHECK(post.header("X-Cache-Key").empty());
  for (int i = 0; i < 2; ++i) {
    // text/html is not listed; application/json with a charset is another type (Kong's exact
    // type, subtype and parameters match).
    CHECK(p.f.get("/reply?Content-Type=text/html").header("X-Cache-Status") == "Bypass");
    CHECK(p.f.get("/reply?Content-Type=application/json;%20charset=utf-8")
              .header("X-Cache-Status") == "Bypass");
  }
  // Status 401 (a plugin's reply on another route) is not in response_code either.
  Proxy q(Json{{"content_type", {"application/json; charset=utf-8"}}});
  q.f.add("plugins", {{"name", "key-auth"}});
  REQUIRE(q.f.apply().ToString() == "OK");
  const WireResponse denied = q.f.get("/reply");
  CHECK(denied.status == 401);
  CHECK(denied.header("X-Cache-Status").empty());  // auth ran first (priority 1250 > 100)
}

TEST_CASE("proxy-cache keys: vary_headers and vary_query_params") {
  Proxy p(Json{{"vary_headers", {"X-Tenant"}}, {"vary_query_params", {"page"}}});
  const std::string target = std::string("/reply?") + kJson + "&page=1";
  CHECK(p.f.get(target, "X-Tenant: a\r\n").header("X-Cache-Status") == "Miss");
  CHECK(p.f.get(target, "X-Tenant: a\r\n").header("X-Cache-Status") == "Hit");
  CHECK(p.f.get(target, "X-Tenant: b\r\n").header("X-Cache-Status") == "Miss");
  // A header outside the vary set is not part of the key: it cannot split (or poison) it.
  CHECK(p.f.get(target, "X-Tenant: a\r\nX-Forwarded-Host: evil\r\n").header("X-Cache-Status") ==
        "Hit");
  // Only `page` counts among the query arguments.
  CHECK(p.f.get(target + "&other=1", "X-Tenant: a\r\n").header("X-Cache-Status") == "Hit");
}

TEST_CASE("proxy-cache never stores responses that could poison or leak") {
  Proxy p(Json{{"vary_headers", {"Accept-Language"}}});
  for (const char* extra : {"&Set-Cookie=session%3Dabc", "&Cache-Control=private",
                            "&Cache-Control=no-store", "&Vary=X-Other", "&Vary=*"}) {
    INFO(extra);
    const std::string target = std::string("/reply?") + kJson + extra;
    CHECK(p.f.get(target).header("X-Cache-Status") == "Bypass");
    const WireResponse again = p.f.get(target);
    CHECK(again.header("X-Cache-Status") == "Bypass");
  }
  // Varying on a keyed header is fine.
  const std::string keyed = std::string("/reply?") + kJson + "&Vary=accept-language";
  CHECK(p.f.get(keyed, "Accept-Language: de\r\n").header("X-Cache-Status") == "Miss");
  CHECK(p.f.get(keyed, "Accept-Language: de\r\n").header("X-Cache-Status") == "Hit");
  // Authorization that no plugin authenticated: stored only when the response says public.
  const std::string authed = std::string("/reply?") + kJson + "&u=1";
  CHECK(p.f.get(authed, "Authorization: Bearer a\r\n").header("X-Cache-Status") == "Bypass");
  const std::string pub = std::string("/reply?") + kJson + "&Cache-Control=public";
  CHECK(p.f.get(pub, "Authorization: Bearer a\r\n").header("X-Cache-Status") == "Miss");
  CHECK(p.f.get(pub, "Authorization: Bearer b\r\n").header("X-Cache-Status") == "Hit");
}

TEST_CASE("proxy-cache with cache_control: request and response directives") {
  Proxy p(Json{{"cache_control", true}});
  const std::string fresh = std::string("/reply?") + kJson + "&Cache-Control=max-age%3D60";
  CHECK(p.f.get(fresh, "Cache-Control: no-cache\r\n").header("X-Cache-Status") == "Bypass");
  CHECK(p.f.get(fresh, "Authorization: x\r\n").header("X-Cache-Status") == "Bypass");
  CHECK(p.f.get(fresh).header("X-Cache-Status") == "Miss");
  CHECK(p.f.get(fresh).header("X-Cache-Status") == "Hit");
  // min-fresh beyond what is left of the 60 s: refreshed from the upstream.
  CHECK(p.f.get(fresh, "Cache-Control: min-fresh=120\r\n").header("X-Cache-Status") ==
        "Refresh");
  // No max-age (nor Expires): a TTL of 0 is not cacheable.
  const std::string none = std::string("/reply?") + kJson + "&n=1";
  CHECK(p.f.get(none).header("X-Cache-Status") == "Bypass");
  CHECK(p.f.get(none).header("X-Cache-Status") == "Bypass");
  // only-if-cached on a miss: 504, the upstream not asked.
  const WireResponse only = p.f.get(std::string("/reply?") + kJson + "&o=1",
                                    "Cache-Control: only-if-cached\r\n");
  CHECK(only.status == 504);
  CHECK(only.header("X-Serial").empty());
}

TEST_CASE("proxy-cache: an entry older than cache_ttl is refreshed") {
  Proxy p(Json{{"cache_ttl", 1}, {"storage_ttl", 60}});
  const std::string target = std::string("/reply?") + kJson;
  CHECK(p.f.get(target).header("X-Cache-Status") == "Miss");
  CHECK(p.f.get(target).header("X-Cache-Status") == "Hit");
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));  // ages are whole seconds
  const WireResponse r = p.f.get(target);
  CHECK(r.header("X-Cache-Status") == "Refresh");
  const WireResponse hit = p.f.get(target);
  CHECK(hit.header("X-Cache-Status") == "Hit");
  CHECK(hit.header("X-Serial") == r.header("X-Serial"));  // the refreshed copy
}

TEST_CASE("proxy-cache response_headers: hidden unless the request has Kong-Debug") {
  Proxy p(Json{{"response_headers",
                {{"age", false}, {"X-Cache-Status", false}, {"X-Cache-Key", false}}}});
  const std::string target = std::string("/reply?") + kJson + "&X-RateLimit-Remaining-Minute=4";
  const WireResponse miss = p.f.get(target);
  CHECK(miss.header("X-Cache-Status").empty());
  CHECK(miss.header("X-Cache-Key").empty());
  const WireResponse hit = p.f.get(target);
  CHECK(hit.header("X-Serial") == miss.header("X-Serial"));
  CHECK(hit.header("X-Cache-Status").empty());
  CHECK(hit.header("Age").empty());
  // A replayed response drops the rate-limit counters of the exchange it came from.
  CHECK(hit.header("X-RateLimit-Remaining-Minute").empty());
  const WireResponse debug = p.f.get(target, "Kong-Debug: 1\r\n");
  CHECK(debug.header("X-Cache-Status") == "Hit");
  CHECK(debug.header("Age") == "0");
  CHECK(debug.header("X-Cache-Key").size() == 64);
}

TEST_CASE("proxy-cache: an authenticated consumer gets entries of its own") {
  PluginFixture f;
  f.add("plugins", {{"name", "key-auth"}});
  f.add("plugins", {{"name", "proxy-cache"}, {"config", withDefaults(Json::object())}});
  const Json alice = f.add("consumers", {{"username", "alice"}});
  const Json bob = f.add("consumers", {{"username", "bob"}});
  f.add("keyauth_credentials", {{"consumer", {{"id", alice["id"]}}}, {"key", "ka"}});
  f.add("keyauth_credentials", {{"consumer", {{"id", bob["id"]}}}, {"key", "kb"}});
  REQUIRE(f.apply().ToString() == "OK");
  const std::string target = std::string("/reply?") + kJson;
  const WireResponse a1 = f.get(target, "apikey: ka\r\n");
  const WireResponse a2 = f.get(target, "apikey: ka\r\n");
  const WireResponse b1 = f.get(target, "apikey: kb\r\n");
  CHECK(a1.header("X-Cache-Status") == "Miss");
  CHECK(a2.header("X-Cache-Status") == "Hit");
  CHECK(b1.header("X-Cache-Status") == "Miss");
  CHECK(a1.header("X-Cache-Key") != b1.header("X-Cache-Key"));
}

}  // namespace
}  // namespace portico::dp
