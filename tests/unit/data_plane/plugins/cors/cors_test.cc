// cors: schema, preflights and response headers through the real proxy (Kong 3.10 rules).
#include <catch2/catch.hpp>

#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::PluginFixture;
using testing::WireResponse;

struct CorsFixture : PluginFixture {
  explicit CorsFixture(Json config) {
    add("plugins", {{"name", "cors"}, {"route", {{"id", routeId()}}}, {"config", config}});
    REQUIRE(apply().ToString() == "OK");
  }
  WireResponse preflight(const std::string& origin, const std::string& extra = "") {
    return send("OPTIONS /x HTTP/1.1\r\nHost: h\r\nOrigin: " + origin +
                "\r\nAccess-Control-Request-Method: POST\r\n" + extra + "\r\n");
  }
};

std::string allValues(const WireResponse& r, const std::string& name) {
  std::string out;
  for (const auto& [k, v] : r.headers) {
    if (k.size() == name.size() &&
        std::equal(k.begin(), k.end(), name.begin(),
                   [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
      out += (out.empty() ? "" : "|") + v;
    }
  }
  return out;
}

TEST_CASE("cors schema") {
  Json d = testing::pluginDefaults({{"name", "cors"}});
  CHECK(d["config"]["methods"] == Json::array({"GET", "HEAD", "PUT", "PATCH", "POST", "DELETE",
                                                "OPTIONS", "TRACE", "CONNECT"}));
  CHECK(d["config"]["allow_origin_absent"] == true);
  CHECK(testing::pluginSchemaError({{"name", "cors"}, {"config", {{"methods", {"FETCH"}}}}}) ==
        "config.methods.1: expected one of: GET, HEAD, PUT, PATCH, POST, DELETE, OPTIONS, "
        "TRACE, CONNECT");
  CHECK(testing::pluginSchemaError({{"name", "cors"}, {"config", {{"origins", {"(bad"}}}}}) ==
        "config.origins.1: '(bad' is not a valid regex");
}

TEST_CASE("cors: defaults: preflight answered by the proxy, '*' on responses") {
  CorsFixture f(Json::object());
  WireResponse r = f.preflight("http://a.test", "Access-Control-Request-Headers: X-A\r\n");
  CHECK(r.status == 200);
  CHECK(r.body.empty());
  CHECK(r.header("Content-Length") == "0");
  CHECK(r.header("Access-Control-Allow-Origin") == "*");
  CHECK(r.header("Access-Control-Allow-Methods") ==
        "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT");
  CHECK(r.header("Access-Control-Allow-Headers") == "X-A");
  CHECK(r.header("Access-Control-Expose-Headers").empty());
  CHECK(r.header("Vary").empty());
  r = f.get("/x", "Origin: http://a.test\r\n");
  CHECK(r.status == 200);
  CHECK(r.header("Access-Control-Allow-Origin") == "*");
  CHECK(r.header("Access-Control-Allow-Methods").empty());
}

TEST_CASE("cors: configured origins, credentials, max_age, exposed headers") {
  CorsFixture f(Json{{"origins", {"http://example.com", "https://.*\\.good\\.test"}},
                     {"credentials", true},
                     {"max_age", 23},
                     {"headers", {"x-a", "x-b"}},
                     {"exposed_headers", {"x-c"}},
                     {"private_network", true}});
  WireResponse r = f.preflight("http://example.com:80",
                               "Access-Control-Request-Private-Network: true\r\n");
  CHECK(r.header("Access-Control-Allow-Origin") == "http://example.com");
  CHECK(r.header("Access-Control-Allow-Credentials") == "true");
  CHECK(r.header("Access-Control-Max-Age") == "23");
  CHECK(r.header("Access-Control-Allow-Headers") == "x-a,x-b");
  CHECK(r.header("Access-Control-Allow-Private-Network") == "true");
  CHECK(r.header("Vary") == "Origin");
  r = f.get("/x", "Origin: https://api.good.test\r\n");
  CHECK(r.header("Access-Control-Allow-Origin") == "https://api.good.test");
  CHECK(r.header("Access-Control-Expose-Headers") == "x-c");
  CHECK(r.header("Access-Control-Allow-Credentials") == "true");
  r = f.get("/x", "Origin: http://evil.test\r\n");
  CHECK(r.header("Access-Control-Allow-Origin").empty());
  CHECK(r.header("Access-Control-Allow-Credentials") == "true");  // as Kong
  CHECK(allValues(r, "Vary") == "Origin");
}

TEST_CASE("cors: one literal origin is sent as is; '*' with credentials echoes the origin") {
  CorsFixture f(Json{{"origins", {"http://only.test"}}});
  CHECK(f.get("/x", "Origin: http://other.test\r\n").header("Access-Control-Allow-Origin") ==
        "http://only.test");
  CorsFixture g(Json{{"credentials", true}});
  WireResponse r = g.get("/x", "Origin: http://x.test:8080\r\n");
  CHECK(r.header("Access-Control-Allow-Origin") == "http://x.test:8080");
  CHECK(r.header("Access-Control-Allow-Credentials") == "true");
  CHECK(r.header("Vary") == "Origin");
}

TEST_CASE("cors: preflight_continue and allow_origin_absent") {
  CorsFixture f(Json{{"preflight_continue", true}});
  WireResponse r = f.preflight("http://a.test");
  CHECK(r.status == 200);
  CHECK(r.body.find("OPTIONS /x") == 0);  // the upstream answered
  CHECK(r.header("Access-Control-Allow-Origin").empty());
  CorsFixture g(Json{{"allow_origin_absent", false}});
  CHECK(g.get("/x").header("Access-Control-Allow-Origin").empty());
  CHECK(g.get("/x", "Origin: http://a.test\r\n").header("Access-Control-Allow-Origin") == "*");
}

TEST_CASE("cors: headers go on a key-auth 401 too") {
  PluginFixture f;
  f.add("plugins", {{"name", "cors"}, {"config", {{"origins", {"http://a.test", "http://b.test"}}}}});
  f.add("plugins", {{"name", "key-auth"}});
  REQUIRE(f.apply().ToString() == "OK");
  WireResponse r = f.get("/x", "Origin: http://b.test\r\n");
  CHECK(r.status == 401);
  CHECK(r.header("Access-Control-Allow-Origin") == "http://b.test");
  CHECK(r.header("Vary") == "Origin");
}

}  // namespace
}  // namespace portico::dp
