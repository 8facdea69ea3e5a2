// response-transformer: schema checks, and header and JSON body edits through the real proxy
// (the scripted upstream's /reply sends the request body back with the query's headers, with
// Content-Length, chunked or until-close framing).
#include <string>

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
  return testing::pluginSchemaError({{"name", "response-transformer"}, {"config", config}});
}

struct Proxy {
  explicit Proxy(const Json& config) {
    f.add("plugins", {{"name", "response-transformer"}, {"config", config}});
    REQUIRE(f.apply().ToString() == "OK");
  }
  // POSTs `body` to /reply<target>; the upstream answers with it and the query's headers.
  WireResponse reply(const std::string& target, const std::string& body) {
    return f.send("POST /reply" + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n" + body);
  }
  PluginFixture f;
};

constexpr char kJsonType[] = "Content-Type=application/json";

TEST_CASE("response-transformer schema") {
  const Json d = testing::pluginDefaults({{"name", "response-transformer"}})["config"];
  CHECK(d["remove"] == Json({{"json", Json::array()}, {"headers", Json::array()}}));
  CHECK(d["rename"] == Json({{"json", Json::array()}, {"headers", Json::array()}}));
  for (const char* op : {"replace", "add", "append"}) {
    CHECK(d[op] == Json({{"json", Json::array()}, {"json_types", Json::array()},
                         {"headers", Json::array()}}));
  }
  CHECK(schemaError({{"add", {{"json", {"p1:v1"}}, {"json_types", {"number"}}}}}).empty());
  CHECK(schemaError({{"add", {{"json", {"p1"}}}}}) == "config.add.json.1: invalid value: p1");
  CHECK(schemaError({{"append", {{"headers", {"x-a:1", "nocolon"}}}}}) ==
        "config.append.headers.2: invalid value: nocolon");
  CHECK(schemaError({{"replace", {{"json_types", {"integer"}}}}}) ==
        "config.replace.json_types.1: expected one of: boolean, number, string");
  CHECK(schemaError({{"rename", {{"headers", {"x-a:x b"}}}}}) ==
        "config.rename.headers.1: 'x b' is not a valid header");
  CHECK(schemaError({{"rename", {{"headers", {"x a:x-b"}}}}}) ==
        "config.rename.headers.1: 'x a' is not a valid header");
  CHECK(schemaError({{"rename", {{"headers", {"x-a:x-b"}}}}}).empty());
  CHECK(schemaError({{"remove", {{"headers", {"anything goes"}}}}}).empty());
}

TEST_CASE("response-transformer headers: remove, rename, replace, add, append in order") {
  Proxy p({{"remove", {{"headers", {"x-gone", "x-both"}}}},
           {"rename", {{"headers", {"x-old:x-new"}}}},
           {"replace", {{"headers", {"x-rep:replaced", "x-absent-rep:no"}}}},
           {"add", {{"headers", {"x-added:yes", "x-rep:not-added", "x-both:readded"}}}},
           {"append", {{"headers", {"x-app:two", "x-fresh:1"}}}}});
  const WireResponse r = p.reply(
      "?x-gone=1&x-both=1&x-old=o1&x-old=o2&x-rep=orig&x-app=one&Content-Type=text/plain", "hi");
  REQUIRE(r.status == 200);
  CHECK(r.body == "hi");
  CHECK(r.header("x-gone").empty());
  // x-both was there when the headers arrived: remove drops it and add does not bring it back.
  CHECK(r.header("x-both").empty());
  CHECK(r.header("x-old").empty());
  int news = 0, apps = 0;
  for (const auto& [name, value] : r.headers) {
    if (name == "x-new") {
      CHECK(value == (news == 0 ? "o1" : "o2"));
      ++news;
    }
    if (name == "x-app") ++apps;
  }
  CHECK(news == 2);
  CHECK(apps == 2);
  CHECK(r.header("x-rep") == "replaced");
  CHECK(r.header("x-absent-rep").empty());
  CHECK(r.header("x-added") == "yes");
  CHECK(r.header("x-fresh") == "1");
  CHECK(r.header("Content-Length") == "2");  // no JSON edit: the body and its length stand
}

TEST_CASE("response-transformer JSON body: Kong's operations and value rules") {
  Proxy p({{"remove", {{"json", {"r1", "r2"}}}},
           {"rename", {{"json", {"old:new", "missing:x"}}}},
           {"replace", {{"json", {"rep:v", "fls:v", "nul:v", "absent:v"}}}},
           {"add", {{"json", {"a1:v1", "num:7", "bool:true", "fls:added", "nul:no", "p4:\"v1\"",
                              "slash:/a/b", "ws:x", "bad:zz"}},
                    {"json_types", {"string", "number", "boolean", "string", "string", "string",
                                    "string", "string", "number"}}}},
           {"append", {{"json", {"s:two", "arr:3", "none:1", "n:1"}},
                       {"json_types", {"string", "number"}}}}});
  const Json in = {{"r1", 1}, {"r2", {1, 2}}, {"old", "o"}, {"rep", "x"}, {"fls", false},
                   {"nul", nullptr}, {"s", "one"}, {"arr", {1, 2}}, {"n", 5}, {"e", Json::array()},
                   {"keep", {{"deep", true}}}};
  for (const char* framing : {"", "/chunked", "/close"}) {
    INFO(framing);
    const WireResponse r = p.reply(std::string(framing) + "?" + kJsonType, in.dump());
    REQUIRE(r.status == 200);
    INFO(r.body);
    const Json out = Json::parse(r.body);
    CHECK_FALSE(out.contains("r1"));
    CHECK_FALSE(out.contains("r2"));
    CHECK(out["new"] == "o");
    CHECK_FALSE(out.contains("old"));
    CHECK_FALSE(out.contains("x"));
    CHECK(out["rep"] == "v");
    // replace needs a truthy value: false is not, JSON null (cjson.null) is.
    CHECK(out["fls"] == "added");  // add writes over false
    CHECK(out["nul"] == "v");
    CHECK_FALSE(out.contains("absent"));
    CHECK(out["a1"] == "v1");
    CHECK(out["num"] == 7);
    CHECK(out["bool"] == true);
    CHECK(out["p4"] == "\"v1\"");
    CHECK(out["slash"] == "/a/b");
    CHECK_FALSE(out.contains("bad"));  // a number that does not parse: Kong gets nil, skips
    CHECK(out["s"] == Json({"one", "two"}));
    CHECK(out["arr"] == Json({1, 2, 3}));
    CHECK(out["none"] == Json({"1"}));
    CHECK(out["n"] == Json({"1"}));
    CHECK(out["e"] == Json::array());  // empty arrays stay arrays
    CHECK(out["keep"] == Json({{"deep", true}}));
    // Sent with its own length, whatever the upstream's framing was.
    CHECK(r.header("Content-Length") == std::to_string(r.body.size()));
    CHECK(r.header("Transfer-Encoding").empty());
  }
}

TEST_CASE("response-transformer leaves bodies it cannot edit unchanged and counts them") {
  Proxy p(Json{{"add", {{"json", {"p1:v1"}}}}});
  // Not a JSON Content-Type: not touched, not counted.
  WireResponse r = p.reply("?Content-Type=text/plain", "{\"a\":1}");
  CHECK(r.body == "{\"a\":1}");
  // JSON types Kong recognizes: parameters, +json suffixes, a list of types.
  for (const char* type : {"application/json;%20charset=utf-8", "application/problem%2Bjson",
                           "text/html,%20application/JSON"}) {
    r = p.reply(std::string("?Content-Type=") + type, "{\"a\":1}");
    CHECK(Json::parse(r.body) == Json({{"a", 1}, {"p1", "v1"}}));
  }
  const auto counted = [&p](const std::string& name) {
    const std::string m = p.f.metrics();
    const size_t at = m.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::stol(m.substr(at + name.size() + 2));
  };
  const long not_json = counted("portico_dp_response_transformer_not_json_total");
  for (const std::string body : {"not json", "[1,2]", "\"str\"", "", "{\"a\":"}) {
    r = p.reply("/chunked?" + std::string(kJsonType), body);
    CHECK(r.status == 200);
    CHECK(r.body == body);
  }
  const std::string deep = std::string(200, '[') + std::string(200, ']');
  r = p.reply(std::string("?") + kJsonType, "{\"a\":" + deep + "}");
  CHECK(r.status == 200);
  CHECK(r.body == "{\"a\":" + deep + "}");
  CHECK(counted("portico_dp_response_transformer_not_json_total") - not_json == 6);
  // An empty body (Content-Length: 0) is not held: nothing to edit.
}

TEST_CASE("response-transformer passes a body over the response buffer through unchanged") {
  Proxy p(Json{{"add", {{"json", {"p1:v1"}}}}});
  // 8 MiB is the proxy's default max_response_body_buffer: one byte over streams through.
  std::string big = "{\"k\":\"" + std::string(8 * 1024 * 1024, 'x') + "\"}";
  const auto before = p.f.metrics();
  for (const char* framing : {"", "/chunked"}) {
    INFO(framing);
    const WireResponse r = p.reply(std::string(framing) + "?" + kJsonType, big);
    REQUIRE(r.status == 200);
    CHECK(r.body.size() == big.size());
    CHECK(r.body == big);
  }
  const std::string m = p.f.metrics();
  CHECK(m.find("portico_dp_response_transformer_too_large_total 2") != std::string::npos);
  // Under the limit, a large body is edited (Kong's 1 MiB case).
  std::string large = "{\"k\":\"" + std::string(1024 * 1024, '*') + "\",\"params\":1}";
  const WireResponse r = p.reply(std::string("?") + kJsonType, large);
  const Json out = Json::parse(r.body);
  CHECK(out["p1"] == "v1");
  CHECK(out["k"].get<std::string>().size() == 1024 * 1024);
}

TEST_CASE("response-transformer edits local replies too (a plugin's 401, the router's 404)") {
  PluginFixture f;
  f.add("plugins", {{"name", "key-auth"}});
  f.add("plugins", {{"name", "response-transformer"},
                    {"config", {{"add", {{"json", {"hint:use a key"}}, {"headers", {"x-rt:1"}}}},
                                {"remove", {{"json", {"request_id"}}}}}}});
  REQUIRE(f.apply().ToString() == "OK");
  const WireResponse r = f.get("/anything");
  REQUIRE(r.status == 401);
  CHECK(r.header("x-rt") == "1");
  const Json body = Json::parse(r.body);
  CHECK(body["message"] == "No API key found in request");
  CHECK(body["hint"] == "use a key");
  CHECK(r.header("Content-Length") == std::to_string(r.body.size()));
}

}  // namespace
}  // namespace portico::dp
