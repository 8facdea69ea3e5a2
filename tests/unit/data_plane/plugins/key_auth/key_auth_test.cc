// key-auth: schema messages and behaviour through the real proxy (Kong 3.10's rules).
#include <catch2/catch.hpp>

#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::PluginFixture;
using testing::WireResponse;

std::string schemaError(const Json& plugin) {
  Json out;
  config::FieldErrors errors = config::processEntityJson("plugins", plugin, &out);
  return errors.empty() ? "" : errors.front().field + ": " + errors.front().reason;
}

// A fixture with key-auth on the route and a consumer "bob" with key "secret-key".
struct KeyAuthFixture : PluginFixture {
  explicit KeyAuthFixture(Json config = Json::object()) {
    consumer = add("consumers", {{"username", "bob"}, {"custom_id", "c-1"}});
    credential = add("keyauth_credentials",
                     {{"consumer", {{"id", consumer["id"]}}}, {"key", "secret-key"}});
    add("plugins", {{"name", "key-auth"}, {"route", {{"id", routeId()}}}, {"config", config}});
    REQUIRE(apply().ToString() == "OK");
  }
  Json consumer;
  Json credential;
};

TEST_CASE("key-auth schema: defaults and Kong's messages") {
  Json out;
  REQUIRE(config::processEntityJson("plugins", {{"name", "key-auth"}}, &out).empty());
  CHECK(out["config"]["key_names"] == Json::array({"apikey"}));
  CHECK(out["config"]["key_in_header"] == true);
  CHECK(out["config"]["key_in_query"] == true);
  CHECK(out["config"]["key_in_body"] == false);
  CHECK(out["config"]["hide_credentials"] == false);
  CHECK(out["config"]["run_on_preflight"] == true);
  CHECK(out["protocols"] == Json::array({"grpc", "grpcs", "http", "https"}));
  CHECK(schemaError({{"name", "key-auth"}, {"config", {{"key_names", {"api key"}}}}}) ==
        "config.key_names.1: bad header name 'api key', allowed characters are A-Z, a-z, 0-9, "
        "'_', and '-'");
  CHECK(schemaError({{"name", "key-auth"}, {"consumer", {{"id", "6b3a5d5e-8f7e-4d0c-9f62-"
                                                                 "1d2f3a4b5c6d"}}}}) ==
        "consumer: value must be null");
  CHECK(schemaError({{"name", "key-auth"}, {"config", {{"hide_credentials", "yes"}}}}) ==
        "config.hide_credentials: expected a boolean");
}

TEST_CASE("key-auth: no key, a wrong key and a good key") {
  KeyAuthFixture f;
  WireResponse r = f.get("/hello");
  CHECK(r.status == 401);
  CHECK(r.body == R"({"message":"No API key found in request"})");
  CHECK(r.header("WWW-Authenticate") == "Key");

  r = f.get("/hello", "apikey: nope\r\n");
  CHECK(r.status == 401);
  CHECK(r.body == R"({"message":"Unauthorized"})");
  CHECK(r.header("WWW-Authenticate") == "Key");

  r = f.get("/hello", "apikey: \r\n");
  CHECK(r.status == 401);
  CHECK(r.body == R"({"message":"No API key found in request"})");

  r = f.get("/hello", "apikey: secret-key\r\nX-Consumer-Username: forged\r\n"
                      "X-Anonymous-Consumer: true\r\n");
  REQUIRE(r.status == 200);
  CHECK(PluginFixture::upstreamHeader(r, "X-Consumer-ID") == f.consumer["id"]);
  CHECK(PluginFixture::upstreamHeader(r, "X-Consumer-Username") == "bob");
  CHECK(PluginFixture::upstreamHeader(r, "X-Consumer-Custom-ID") == "c-1");
  CHECK(PluginFixture::upstreamHeader(r, "X-Credential-Identifier") == f.credential["id"]);
  CHECK(PluginFixture::upstreamHeader(r, "X-Anonymous-Consumer").empty());
  CHECK(PluginFixture::upstreamHeader(r, "apikey") == "secret-key");  // not hidden by default
}

TEST_CASE("key-auth: the query string, duplicates, and underscores in header names") {
  KeyAuthFixture f(Json{{"key_names", {"api_key", "apikey"}}});
  CHECK(f.get("/x?apikey=secret-key").status == 200);
  CHECK(f.get("/x?apikey=secret%2Dkey").status == 200);  // decoded like ngx.decode_args
  WireResponse r = f.get("/x?apikey=secret-key&apikey=other");
  CHECK(r.status == 401);
  CHECK(r.body == R"({"message":"Duplicate API key found"})");
  CHECK(f.get("/x?apikey[]=secret-key").status == 401);
  // api_key configured: the header may be sent as api-key or API_KEY.
  CHECK(f.get("/x", "api-key: secret-key\r\n").status == 200);
  CHECK(f.get("/x", "API_KEY: secret-key\r\n").status == 200);
  // The first source with a value decides: a wrong header is not rescued by the query.
  CHECK(f.get("/x?apikey=secret-key", "api_key: wrong\r\n").status == 401);
}

TEST_CASE("key-auth: hide_credentials removes the key from the header and the query") {
  KeyAuthFixture f(Json{{"hide_credentials", true}});
  WireResponse r = f.get("/x", "apikey: secret-key\r\n");
  REQUIRE(r.status == 200);
  CHECK(PluginFixture::upstreamHeader(r, "apikey").empty());
  r = f.get("/x?a=1&apikey=secret-key&b=2");
  REQUIRE(r.status == 200);
  CHECK(PluginFixture::upstreamRequestLine(r) == "GET /x?a=1&b=2");
  r = f.get("/x?apikey=secret-key");
  REQUIRE(r.status == 200);
  CHECK(PluginFixture::upstreamRequestLine(r) == "GET /x");
}

TEST_CASE("key-auth: realm, run_on_preflight and key_in_body") {
  KeyAuthFixture f(Json{{"realm", "portico"}, {"run_on_preflight", false}, {"key_in_body", true}});
  WireResponse r = f.get("/x");
  CHECK(r.header("WWW-Authenticate") == "Key realm=\"portico\"");
  r = f.send("OPTIONS /x HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(r.status == 200);
  const std::string form = "a=1&apikey=secret-key";
  r = f.send("POST /x HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\n"
             "Content-Length: " + std::to_string(form.size()) + "\r\n\r\n" + form);
  CHECK(r.status == 200);
  const std::string json = R"({"apikey":"secret-key"})";
  r = f.send("POST /x HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
             "Content-Length: " + std::to_string(json.size()) + "\r\n\r\n" + json);
  CHECK(r.status == 200);
  const std::string dup = R"({"apikey":["secret-key","x"]})";
  r = f.send("POST /x HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
             "Content-Length: " + std::to_string(dup.size()) + "\r\n\r\n" + dup);
  CHECK(r.status == 401);
  CHECK(r.body == R"({"message":"Duplicate API key found"})");
}

TEST_CASE("key-auth: anonymous consumer, and a missing one is a 500") {
  PluginFixture f;
  Json anon = f.add("consumers", {{"username", "guest"}});
  f.add("plugins", {{"name", "key-auth"}, {"config", {{"anonymous", "guest"}}}});
  REQUIRE(f.apply().ToString() == "OK");
  WireResponse r = f.get("/x");
  REQUIRE(r.status == 200);
  CHECK(PluginFixture::upstreamHeader(r, "X-Consumer-ID") == anon["id"]);
  CHECK(PluginFixture::upstreamHeader(r, "X-Anonymous-Consumer") == "true");
  CHECK(PluginFixture::upstreamHeader(r, "X-Credential-Identifier").empty());

  PluginFixture g;
  g.add("plugins", {{"name", "key-auth"}, {"config", {{"anonymous", "nobody"}}}});
  REQUIRE(g.apply().ToString() == "OK");
  r = g.get("/x");
  CHECK(r.status == 500);
  CHECK(r.body == R"({"message":"anonymous consumer nobody is configured but doesn't exist"})");
}

TEST_CASE("key-auth: an expired ttl key is unknown") {
  PluginFixture f;
  Json c = f.add("consumers", {{"username", "bob"}});
  f.add("keyauth_credentials", {{"consumer", {{"id", c["id"]}}}, {"key", "old"}, {"ttl", 1},
                                {"created_at", 1000}});
  f.add("keyauth_credentials", {{"consumer", {{"id", c["id"]}}}, {"key", "fresh"}, {"ttl", 3600}});
  f.add("plugins", {{"name", "key-auth"}});
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(f.get("/x", "apikey: old\r\n").status == 401);
  CHECK(f.get("/x", "apikey: fresh\r\n").status == 200);
}

TEST_CASE("key-auth: global, service and route scopes; no route matched runs no access") {
  PluginFixture f;
  const std::string other_svc = f.addService("other");
  f.addRoute("open", "/open", other_svc);
  Json c = f.add("consumers", {{"username", "bob"}});
  f.add("keyauth_credentials", {{"consumer", {{"id", c["id"]}}}, {"key", "k"}});
  f.add("plugins", {{"name", "key-auth"}, {"service", {{"id", f.serviceId()}}}});
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(f.get("/x").status == 401);      // route "r" -> service "svc": protected
  CHECK(f.get("/open").status == 200);   // the other service: no plugin
  // A disabled instance does not run.
  f.config().mutable_plugins(0)->set_enabled(false);
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(f.get("/x").status == 200);
}

TEST_CASE("key-auth: header values with CR or LF never reach the upstream") {
  PluginFixture f;
  Json c = f.add("consumers", {{"username", "bob\r\nX-Admin: 1"}});
  f.add("keyauth_credentials", {{"consumer", {{"id", c["id"]}}}, {"key", "k"}});
  f.add("plugins", {{"name", "key-auth"}});
  REQUIRE(f.apply().ToString() == "OK");
  WireResponse r = f.get("/x", "apikey: k\r\n");
  CHECK(r.status == 400);
}

TEST_CASE("key-auth: a 64 KB key and garbage keys get 401, not a crash") {
  KeyAuthFixture f;
  CHECK(f.get("/x?apikey=" + std::string(6000, 'a')).status == 401);
  CHECK(f.get("/x", "apikey: " + std::string(20000, 'b') + "\r\n").status == 401);
  CHECK(f.get("/x?apikey=%zz%").status == 401);
}

}  // namespace
}  // namespace portico::dp
