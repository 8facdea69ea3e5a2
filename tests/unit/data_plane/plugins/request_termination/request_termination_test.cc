// request-termination: schema checks and replies through the real proxy.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::PluginFixture;
using testing::WireResponse;

WireResponse terminate(const Json& config, const std::string& target = "/x",
                       const std::string& extra = "") {
  PluginFixture f;
  f.add("plugins", {{"name", "request-termination"}, {"config", config}});
  REQUIRE(f.apply().ToString() == "OK");
  return f.get(target, extra);
}

TEST_CASE("request-termination schema") {
  CHECK(testing::pluginDefaults({{"name", "request-termination"}})["config"]["status_code"] ==
        503);
  CHECK(testing::pluginSchemaError({{"name", "request-termination"},
                                    {"config", {{"status_code", 99}}}}) ==
        "config.status_code: value should be between 100 and 599");
  CHECK(testing::pluginSchemaError({{"name", "request-termination"},
                                    {"config", {{"message", "m"}, {"body", "b"}}}}) ==
        "@entity: message cannot be used with content_type or body");
  CHECK(testing::pluginSchemaError({{"name", "request-termination"},
                                    {"config", {{"content_type", "text/plain"}}}}) ==
        "@entity: content_type requires a body");
  CHECK(testing::pluginSchemaError(
            {{"name", "request-termination"},
             {"config", {{"echo", true}, {"content_type", "text/plain"}, {"body", "b"}}}}) ==
        "@entity: echo cannot be used with content_type and body");
  // It may be scoped to a consumer.
  CHECK(testing::pluginSchemaError({{"name", "request-termination"},
                                    {"consumer", {{"id", "6b3a5d5e-8f7e-4d0c-9f62-1d2f3a4b5c6d"}}}})
            .empty());
}

TEST_CASE("request-termination: default, message, body and no-body codes") {
  WireResponse r = terminate(Json::object());
  CHECK(r.status == 503);
  CHECK(r.body == R"({"message":"Service unavailable"})");
  CHECK(r.header("Content-Type") == "application/json; charset=utf-8");
  r = terminate({{"status_code", 404}});
  CHECK(r.body == R"({"message":"Not found"})");
  r = terminate({{"status_code", 406}, {"message", "go \"away\""}});
  CHECK(r.status == 406);
  CHECK(r.body == R"({"message":"go \"away\""})");
  r = terminate({{"status_code", 200}, {"body", "<html>hi</html>"}, {"content_type", "text/html"}});
  CHECK(r.status == 200);
  CHECK(r.body == "<html>hi</html>");
  CHECK(r.header("Content-Type") == "text/html");
  r = terminate({{"status_code", 418}});
  CHECK(r.status == 418);
  CHECK(r.body.empty());
}

TEST_CASE("request-termination: trigger and echo") {
  PluginFixture f;
  f.add("plugins", {{"name", "request-termination"},
                    {"config", {{"trigger", "x-stop"}, {"echo", true}, {"status_code", 403}}}});
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(f.get("/x").status == 200);  // proxied
  WireResponse r = f.get("/x?x-stop&a=1&a=2", "X-Hello: world\r\n");
  CHECK(r.status == 403);
  nlohmann::json j = nlohmann::json::parse(r.body);
  CHECK(j["request"]["method"] == "GET");
  CHECK(j["request"]["path"] == "/x");
  CHECK(j["request"]["query"]["a"] == nlohmann::json::array({"1", "2"}));
  CHECK(j["request"]["headers"]["x-hello"] == "world");
  CHECK(j["matched_route"]["id"] == f.routeId());
  CHECK(f.get("/x", "X-Stop: 1\r\n").status == 403);
}

}  // namespace
}  // namespace portico::dp
