// correlation-id: schema, the three generators, keeping an incoming id, and echo_downstream
// on proxied and local replies, through the real proxy.
#include <regex>

#include <catch2/catch.hpp>

#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::PluginFixture;
using testing::WireResponse;

const std::regex kUuidCounter(
    "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}#([0-9]+)");
const std::regex kUuid("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");

struct IdFixture : PluginFixture {
  explicit IdFixture(Json config) {
    add("plugins", {{"name", "correlation-id"}, {"config", config}});
    REQUIRE(apply().ToString() == "OK");
  }
};

TEST_CASE("correlation-id schema") {
  Json d = testing::pluginDefaults({{"name", "correlation-id"}});
  CHECK(d["config"] == Json({{"header_name", "Kong-Request-ID"},
                             {"generator", "uuid#counter"},
                             {"echo_downstream", false}}));
  CHECK(testing::pluginSchemaError(
            {{"name", "correlation-id"}, {"config", {{"generator", "snowflake"}}}}) ==
        "config.generator: expected one of: uuid, uuid#counter, tracker");
}

TEST_CASE("correlation-id: uuid#counter counts per worker; not echoed by default") {
  IdFixture f(Json::object());
  WireResponse a = f.get("/x");
  WireResponse b = f.get("/x");
  const std::string ida = PluginFixture::upstreamHeader(a, "Kong-Request-ID");
  const std::string idb = PluginFixture::upstreamHeader(b, "Kong-Request-ID");
  std::smatch ma, mb;
  REQUIRE(std::regex_match(ida, ma, kUuidCounter));
  REQUIRE(std::regex_match(idb, mb, kUuidCounter));
  CHECK(ida.substr(0, 36) == idb.substr(0, 36));  // the worker's uuid
  CHECK(std::stoll(mb[1]) == std::stoll(ma[1]) + 1);
  CHECK(a.header("Kong-Request-ID").empty());
}

TEST_CASE("correlation-id: an incoming id is kept, a blank one replaced; uuid and tracker") {
  IdFixture f(Json{{"generator", "uuid"}, {"header_name", "X-Trace"}});
  CHECK(PluginFixture::upstreamHeader(f.get("/x", "X-Trace: abc\r\n"), "X-Trace") == "abc");
  CHECK(std::regex_match(PluginFixture::upstreamHeader(f.get("/x", "X-Trace:  \r\n"), "X-Trace"),
                         kUuid));
  CHECK(std::regex_match(PluginFixture::upstreamHeader(f.get("/x"), "X-Trace"), kUuid));

  IdFixture t(Json{{"generator", "tracker"}});
  // <server addr>-<server port>-<pid>-<connection serial>-<requests on it>-<seconds.millis>
  const std::string id = PluginFixture::upstreamHeader(t.get("/x"), "Kong-Request-ID");
  INFO(id);
  CHECK(std::regex_match(id, std::regex("127\\.0\\.0\\.1-" + std::to_string(t.port()) +
                                        "-[0-9]+-[0-9]+-1-[0-9]+\\.[0-9]{3}")));
}

TEST_CASE("correlation-id: echo_downstream, on a local reply too") {
  IdFixture f(Json{{"echo_downstream", true}});
  WireResponse r = f.get("/x");
  CHECK(r.header("Kong-Request-ID") == PluginFixture::upstreamHeader(r, "Kong-Request-ID"));
  CHECK(f.get("/x", "Kong-Request-ID: mine\r\n").header("Kong-Request-ID") == "mine");
  // A key-auth 401 still carries the id (correlation-id runs first and its header phase runs
  // for every collected plugin).
  f.add("plugins", {{"name", "key-auth"}});
  REQUIRE(f.apply().ToString() == "OK");
  r = f.get("/x");
  CHECK(r.status == 401);
  CHECK(std::regex_match(r.header("Kong-Request-ID"), kUuidCounter));
}

}  // namespace
}  // namespace portico::dp
