// acl: schema and decisions through the real proxy, with key-auth setting the consumer.
#include <catch2/catch.hpp>

#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::PluginFixture;
using testing::WireResponse;

// key-auth + acl(config) on the route; consumers "admin" (groups admin, pro) with key "ka",
// "plain" (no groups) with key "kp".
struct AclFixture : PluginFixture {
  explicit AclFixture(Json config) {
    Json admin = add("consumers", {{"username", "admin"}});
    add("keyauth_credentials", {{"consumer", {{"id", admin["id"]}}}, {"key", "ka"}});
    add("acls", {{"consumer", {{"id", admin["id"]}}}, {"group", "admin"}});
    add("acls", {{"consumer", {{"id", admin["id"]}}}, {"group", "pro"}});
    Json plain = add("consumers", {{"username", "plain"}});
    add("keyauth_credentials", {{"consumer", {{"id", plain["id"]}}}, {"key", "kp"}});
    add("plugins", {{"name", "key-auth"}, {"route", {{"id", routeId()}}}});
    add("plugins", {{"name", "acl"}, {"route", {{"id", routeId()}}}, {"config", config}});
    REQUIRE(apply().ToString() == "OK");
  }
};

TEST_CASE("acl schema: exactly one of allow and deny") {
  CHECK(testing::pluginSchemaError({{"name", "acl"}}) ==
        "@entity: at least one of these fields must be non-empty: 'config.allow', "
        "'config.deny'");
  CHECK(testing::pluginSchemaError({{"name", "acl"}, {"config", {{"allow", {"a"}}, {"deny", {"b"}}}}}) ==
        "@entity: exactly one of these fields must be non-empty: 'config.allow', 'config.deny'");
  CHECK(testing::pluginSchemaError({{"name", "acl"}, {"config", {{"allow", {"a"}}}}}).empty());
  CHECK(testing::pluginDefaults({{"name", "acl"}, {"config", {{"allow", {"a"}}}}})["config"]
                               ["hide_groups_header"] == false);
}

TEST_CASE("acl: allow") {
  AclFixture f(Json{{"allow", {"admin"}}});
  WireResponse r = f.get("/x", "apikey: ka\r\n");
  REQUIRE(r.status == 200);
  CHECK(PluginFixture::upstreamHeader(r, "X-Consumer-Groups") == "admin, pro");
  r = f.get("/x", "apikey: kp\r\n");
  CHECK(r.status == 403);
  CHECK(r.body == R"({"message":"You cannot consume this service"})");
}

TEST_CASE("acl: deny, and hide_groups_header") {
  AclFixture f(Json{{"deny", {"pro"}}, {"hide_groups_header", true}});
  CHECK(f.get("/x", "apikey: ka\r\n").status == 403);
  WireResponse r = f.get("/x", "apikey: kp\r\nX-Consumer-Groups: forged\r\n");
  REQUIRE(r.status == 200);  // no groups, deny: passes
  CHECK(PluginFixture::upstreamHeader(r, "X-Consumer-Groups").empty());
}

TEST_CASE("acl: without an auth plugin it answers 401") {
  PluginFixture f;
  f.add("plugins", {{"name", "acl"}, {"config", {{"allow", {"admin"}}}}});
  REQUIRE(f.apply().ToString() == "OK");
  WireResponse r = f.get("/x");
  CHECK(r.status == 401);
  CHECK(r.body == R"({"message":"Unauthorized"})");
}

}  // namespace
}  // namespace portico::dp
