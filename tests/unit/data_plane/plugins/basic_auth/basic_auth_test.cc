// basic-auth: schema, the credentials parser, and behaviour through the real proxy.
#include <catch2/catch.hpp>

#include "data_plane/plugins/basic_auth/credentials.h"
#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::base64;
using testing::PluginFixture;
using testing::WireResponse;

struct BasicFixture : PluginFixture {
  explicit BasicFixture(Json config = Json::object()) {
    consumer = add("consumers", {{"username", "bob"}});
    credential = add("basicauth_credentials", {{"consumer", {{"id", consumer["id"]}}},
                                               {"username", "user123"},
                                               {"password", "pass:word"}});
    add("plugins", {{"name", "basic-auth"}, {"route", {{"id", routeId()}}}, {"config", config}});
    REQUIRE(apply().ToString() == "OK");
  }
  Json consumer;
  Json credential;
};

std::string auth(const std::string& header, const std::string& user_pass) {
  return header + ": Basic " + base64(user_pass) + "\r\n";
}

TEST_CASE("basic-auth schema: defaults and scope") {
  Json p = testing::pluginDefaults({{"name", "basic-auth"}});
  CHECK(p["config"] == Json({{"anonymous", nullptr}, {"hide_credentials", false},
                             {"realm", "service"}}));
  CHECK(testing::pluginSchemaError(
            {{"name", "basic-auth"}, {"consumer", {{"id", "6b3a5d5e-8f7e-4d0c-9f62-1d2f3a4b5c6d"}}}}) ==
        "consumer: value must be null");
  CHECK(testing::pluginSchemaError({{"name", "basic-auth"}, {"config", {{"realm", 5}}}}) ==
        "config.realm: expected a string");
}

TEST_CASE("basic-auth: the credentials parser") {
  using plugins::basic_auth::parseBasicAuthorization;
  auto c = parseBasicAuthorization("Basic " + base64("u:p:q"));
  REQUIRE(c.has_value());
  CHECK(c->username == "u");
  CHECK(c->password == "p:q");
  CHECK(parseBasicAuthorization("  basic   " + base64("u:")).has_value());
  CHECK(!parseBasicAuthorization("Basic " + base64(":p")).has_value());  // empty user
  CHECK(!parseBasicAuthorization("Basic " + base64("nocolon")).has_value());
  CHECK(!parseBasicAuthorization("Basic !!!!").has_value());
  CHECK(!parseBasicAuthorization("Bearer " + base64("u:p")).has_value());
  CHECK(!parseBasicAuthorization("Basic").has_value());
  CHECK(!parseBasicAuthorization("Basic " + std::string(20000, 'A')).has_value());
}

TEST_CASE("basic-auth: 401s with WWW-Authenticate, and a good password") {
  BasicFixture f;
  for (const std::string& extra :
       {std::string(), auth("Authorization", "user123:wrong"), auth("Authorization", "nobody:x"),
        std::string("Authorization: Basic !!!notbase64\r\n"),
        std::string("Authorization: Bearer abc\r\n"), auth("Authorization", "user123"),
        std::string("Authorization: Basic " + std::string(16000, 'A') + "\r\n")}) {
    WireResponse r = f.get("/x", extra);
    CHECK(r.status == 401);
    CHECK(r.body == R"({"message":"Unauthorized"})");
    CHECK(r.header("WWW-Authenticate") == "Basic realm=\"service\"");
  }
  WireResponse r = f.get("/x", auth("Authorization", "user123:pass:word"));
  REQUIRE(r.status == 200);
  CHECK(PluginFixture::upstreamHeader(r, "X-Consumer-Username") == "bob");
  CHECK(PluginFixture::upstreamHeader(r, "X-Credential-Identifier") == "user123");
  CHECK(PluginFixture::upstreamHeader(r, "Authorization") ==
        "Basic " + base64("user123:pass:word"));
  // Proxy-Authorization is tried first.
  CHECK(f.get("/x", auth("Proxy-Authorization", "user123:pass:word")).status == 200);
}

TEST_CASE("basic-auth: hide_credentials, realm and anonymous") {
  BasicFixture f(Json{{"hide_credentials", true}, {"realm", "portico"}});
  WireResponse r = f.get("/x", auth("Proxy-Authorization", "user123:pass:word"));
  REQUIRE(r.status == 200);
  CHECK(PluginFixture::upstreamHeader(r, "Proxy-Authorization").empty());
  CHECK(f.get("/x").header("WWW-Authenticate") == "Basic realm=\"portico\"");

  PluginFixture g;
  Json anon = g.add("consumers", {{"username", "anon"}});
  g.add("plugins", {{"name", "basic-auth"}, {"config", {{"anonymous", anon["id"]}}}});
  REQUIRE(g.apply().ToString() == "OK");
  r = g.get("/x", auth("Authorization", "x:y"));
  REQUIRE(r.status == 200);
  CHECK(PluginFixture::upstreamHeader(r, "X-Anonymous-Consumer") == "true");
  CHECK(PluginFixture::upstreamHeader(r, "X-Consumer-Username") == "anon");
}

TEST_CASE("basic-auth and key-auth: logical AND without anonymous, key-auth's 401 first") {
  BasicFixture f;
  f.add("keyauth_credentials", {{"consumer", {{"id", f.consumer["id"]}}}, {"key", "k"}});
  f.add("plugins", {{"name", "key-auth"}, {"route", {{"id", f.routeId()}}}});
  REQUIRE(f.apply().ToString() == "OK");
  WireResponse r = f.get("/x", auth("Authorization", "user123:pass:word"));
  CHECK(r.status == 401);
  CHECK(r.header("WWW-Authenticate") == "Key");
  CHECK(f.get("/x", "apikey: k\r\n").status == 401);
  CHECK(f.get("/x", "apikey: k\r\n" + auth("Authorization", "user123:pass:word")).status == 200);
}

}  // namespace
}  // namespace portico::dp
