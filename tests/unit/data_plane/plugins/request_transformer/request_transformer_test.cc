// request-transformer: schema checks and upstream-request rewriting through the real proxy
// (the scripted upstream echoes "<METHOD> <TARGET>\n<name>: <value>\n...\n\n<body>").
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
  return testing::pluginSchemaError({{"name", "request-transformer"}, {"config", config}});
}

std::string echoedBody(const WireResponse& r) {
  const size_t sep = r.body.find("\n\n");
  return sep == std::string::npos ? "" : r.body.substr(sep + 2);
}

std::string post(const std::string& target, const std::string& type, const std::string& body,
                 const std::string& extra = "") {
  return "POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body;
}

struct Proxy {
  explicit Proxy(const Json& config, const std::string& route_path = "") {
    if (!route_path.empty()) {
      const std::string rid = f.addRoute("re", route_path, f.serviceId());
      f.add("plugins", {{"name", "request-transformer"}, {"route", {{"id", rid}}},
                        {"config", config}});
    } else {
      f.add("plugins", {{"name", "request-transformer"}, {"config", config}});
    }
    REQUIRE(f.apply().ToString() == "OK");
  }
  PluginFixture f;
};

TEST_CASE("request-transformer schema") {
  const Json d = testing::pluginDefaults({{"name", "request-transformer"}})["config"];
  CHECK(d["http_method"].is_null());
  CHECK(d["remove"] == Json({{"body", Json::array()}, {"headers", Json::array()},
                              {"querystring", Json::array()}}));
  CHECK(d["replace"]["uri"].is_null());
  CHECK(d["append"]["headers"] == Json::array());
  CHECK(schemaError({{"http_method", "GET"}}).empty());
  CHECK(schemaError({{"http_method", "HELLO!"}}) == "config.http_method: invalid value: HELLO!");
  CHECK(schemaError({{"add", {{"querystring", {"uri_param1:$(uri_captures.user1)",
                                                "uri_param2:value"}}}}})
            .empty());
  CHECK(schemaError({{"add", {{"querystring", {"uri_param2:"}}}}}).find(
            "key 'uri_param2' has no value") != std::string::npos);
  CHECK(schemaError({{"add", {{"querystring", {"uri_param2:$(uri_captures user2)"}}}}})
            .find("value '$(uri_captures user2)' is not in supported format, error:") !=
        std::string::npos);
  CHECK(schemaError({{"add", {{"headers", {"x-foo"}}}}}).find("invalid value: x-foo") !=
        std::string::npos);
  CHECK(schemaError({{"add", {{"headers", {"x foo:bar"}}}}}).find(
            "'x foo' is not a valid header") != std::string::npos);
  CHECK(schemaError({{"remove", {{"headers", {"x@y"}}}}}).find("'x@y' is not a valid header") !=
        std::string::npos);
  CHECK(schemaError({{"rename", {{"headers", {"x-a:x b"}}}}}).find(
            "'x b' is not a valid header") != std::string::npos);
  CHECK(schemaError({{"replace", {{"headers", {"x-a:"}}}}}).empty());  // Kong accepts it
  CHECK(schemaError({{"add", {{"headers", {"x-a:$(os.getenv('HOME'))"}}}}}).find(
            "is not in supported format") != std::string::npos);
  CHECK(schemaError({{"replace", {{"uri", "/x/$(uri_captures[1])"}}}}).empty());
  CHECK(schemaError({{"replace", {{"uri", "/x/$(now())"}}}}).find("config.replace.uri") == 0);
  // Values may contain ':' (everything after the first run of ':').
  CHECK(schemaError({{"add", {{"body", {"p2:value:1"}}}}}).empty());
}

TEST_CASE("request-transformer: headers remove, rename, replace, add, append") {
  Proxy p({{"remove", {{"headers", {"x-gone", "x-again"}}}},
           {"rename", {{"headers", {"x-old:x-new", "x-case:X-CASE"}}}},
           {"replace", {{"headers", {"x-rep:new", "x-absent:never", "host:example.org"}}}},
           {"add", {{"headers", {"x-again:added", "x-rep:not-added", "x-add:$(query_params.q)"}}}},
           {"append", {{"headers", {"x-app:v1", "x-app:v2", "x-rep:more"}}}}});
  WireResponse r = p.f.get("/path?q=hello",
                           "X-Gone: 1\r\nX-Again: 1\r\nX-Old: o\r\nX-Case: c\r\nX-Rep: old\r\n");
  REQUIRE(r.status == 200);
  CHECK(PluginFixture::upstreamHeader(r, "X-Gone").empty());
  CHECK(PluginFixture::upstreamHeader(r, "X-Again") == "added");  // remove then add: added
  CHECK(PluginFixture::upstreamHeader(r, "X-Old").empty());
  CHECK(PluginFixture::upstreamHeader(r, "X-New") == "o");
  CHECK(PluginFixture::upstreamHeader(r, "X-Case") == "c");
  CHECK(PluginFixture::upstreamHeader(r, "X-Absent").empty());
  CHECK(PluginFixture::upstreamHeader(r, "Host") == "example.org");
  CHECK(PluginFixture::upstreamHeader(r, "X-Add") == "hello");
  CHECK(r.body.find("x-app: v1\n") != std::string::npos);
  CHECK(r.body.find("x-app: v2\n") != std::string::npos);
  CHECK(r.body.find("x-rep: new\n") != std::string::npos);
  CHECK(r.body.find("x-rep: more\n") != std::string::npos);
}

TEST_CASE("request-transformer: querystring, sorted and re-encoded") {
  Proxy p({{"remove", {{"querystring", {"q1"}}}},
           {"rename", {{"querystring", {"r:renamed"}}}},
           {"replace", {{"querystring", {"rep:x y"}}}},
           {"add", {{"querystring", {"uri_param2[some_index][1]:a", "rep:no"}}}},
           {"append", {{"querystring", {"z:1", "z:2"}}}}});
  WireResponse r = p.f.get("/p?q1=v1&r=1&rep=old&flag");
  CHECK(PluginFixture::upstreamRequestLine(r) ==
        "GET /p?flag&renamed=1&rep=x%20y&uri_param2%5Bsome_index%5D%5B1%5D=a&z=1&z=2");
}

TEST_CASE("request-transformer: JSON and form bodies") {
  Proxy p({{"remove", {{"body", {"gone"}}}},
           {"rename", {{"body", {"old:new"}}}},
           {"replace", {{"body", {"rep:r"}}}},
           {"add", {{"body", {"added:a", "rep:no"}}}},
           {"append", {{"body", {"list:l1", "list:l2"}}}}});
  WireResponse r = p.f.send(post("/j", "application/json",
                                 R"({"gone":1,"old":"o","rep":"x","keep":[],"n":12345678901234567})"));
  REQUIRE(r.status == 200);
  Json j = Json::parse(echoedBody(r));
  CHECK(j == Json::parse(
                 R"({"new":"o","rep":"r","keep":[],"n":12345678901234567,"added":"a","list":["l1","l2"]})"));
  CHECK(PluginFixture::upstreamHeader(r, "Content-Length") ==
        std::to_string(echoedBody(r).size()));
  // Form: same operations, repeated keys kept as repeated args.
  r = p.f.send(post("/f", "application/x-www-form-urlencoded", "gone=1&old=o&rep=x&list=l0"));
  CHECK(echoedBody(r) == "rep=r&list=l0&list=l1&list=l2&new=o&added=a");
  // Malformed JSON passes unchanged; an empty JSON body still gets add/append.
  r = p.f.send(post("/m", "application/json", "malformed json body"));
  CHECK(echoedBody(r) == "malformed json body");
  r = p.f.send(post("/e", "application/json", ""));
  CHECK(Json::parse(echoedBody(r)) ==
        Json::parse(R"({"added":"a","rep":"no","list":["l1","l2"]})"));
  // Other content types are not touched.
  r = p.f.send(post("/t", "text/plain", "gone=1"));
  CHECK(echoedBody(r) == "gone=1");
}

TEST_CASE("request-transformer: multipart body") {
  Proxy p({{"remove", {{"body", {"gone"}}}}, {"add", {{"body", {"added:a"}}}}});
  const std::string body =
      "--XyZ\r\nContent-Disposition: form-data; name=\"gone\"\r\n\r\n1\r\n"
      "--XyZ\r\nContent-Disposition: form-data; name=\"keep\"\r\n\r\nk\r\n--XyZ--\r\n";
  WireResponse r = p.f.send(post("/mp", "multipart/form-data; boundary=XyZ", body));
  CHECK(echoedBody(r) ==
        "--XyZ\r\nContent-Disposition: form-data; name=\"keep\"\r\n\r\nk\r\n"
        "--XyZ\r\nContent-Disposition: form-data; name=\"added\"\r\n\r\na\r\n--XyZ--\r\n");
}

TEST_CASE("request-transformer: bodies that were not buffered with the head") {
  Proxy p(Json{{"add", {{"body", {"added:a"}}}}});
  // A chunked JSON body is read whole, transformed and sent with a Content-Length.
  WireResponse r = p.f.send(
      "POST /x1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"k\":\r\n4\r\n\"v\"}\r\n0\r\n\r\n");
  REQUIRE(r.status == 200);
  INFO(r.body);
  CHECK(Json::parse(echoedBody(r)) == Json::parse(R"({"k":"v","added":"a"})"));
  CHECK(r.body.find("transfer-encoding") == std::string::npos);
  // A large Content-Length body (not sent with the head) is read whole too.
  const std::string big = "{\"pad\":\"" + std::string(300000, 'x') + "\"}";
  r = p.f.send(post("/large", "application/json", big));
  REQUIRE(r.status == 200);
  INFO(r.body.substr(0, 600));
  Json j = Json::parse(echoedBody(r));
  CHECK(j["added"] == "a");
  CHECK(j["pad"].get<std::string>().size() == 300000);
  // Over the proxy's buffering limit: refused, never forwarded untransformed.
  r = p.f.send("POST /over HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: 9437184\r\n\r\n");
  CHECK(r.status == 413);
  // A body the plugin does not touch (no matching content type) is streamed as before.
  r = p.f.send(post("/plain", "text/plain", std::string(300000, 'y')));
  CHECK(echoedBody(r).size() == 300000);
}

TEST_CASE("request-transformer: http_method and replace.uri") {
  {
    Proxy p(Json{{"http_method", "GET"}});
    WireResponse r =
        p.f.send(post("/m?hello=world", "application/x-www-form-urlencoded", "name=marco"));
    CHECK(PluginFixture::upstreamRequestLine(r) == "GET /m?hello=world&name=marco");
  }
  {
    Proxy p(Json{{"http_method", "POST"}});
    CHECK(PluginFixture::upstreamRequestLine(p.f.get("/m?a=1")) == "POST /m?a=1");
  }
  {
    // An uppercase method Kong's set_method does not know: Kong errors (500).
    Proxy p(Json{{"http_method", "FOO"}});
    CHECK(p.f.get("/m").status == 500);
  }
  {
    Proxy p({{"replace", {{"uri", "/new/$(uri_captures.user)/$(uri_captures[2])"}}}},
            "~/u/(?<user>\\w+)/(\\w+)");
    WireResponse r = p.f.get("/u/bob/x1?keep=1");
    CHECK(PluginFixture::upstreamRequestLine(r) == "GET /new/bob/x1?keep=1");
  }
}

TEST_CASE("request-transformer: templates read the original request") {
  Proxy p({{"remove", {{"headers", {"x-remove"}}}},
           {"replace", {{"headers", {"x-replace:new"}}}},
           {"add", {{"headers", {"x-from-removed:$(headers['x-remove'])",
                                 "x-from-replaced:$(headers[\"x-replace\"])",
                                 "x-shared:[$(shared.nothing)]"}}}}});
  WireResponse r = p.f.get("/t", "X-Remove: removed\r\nX-Replace: old\r\n");
  CHECK(PluginFixture::upstreamHeader(r, "X-Remove").empty());
  CHECK(PluginFixture::upstreamHeader(r, "X-From-Removed") == "removed");
  CHECK(PluginFixture::upstreamHeader(r, "X-From-Replaced") == "old");
  CHECK(PluginFixture::upstreamHeader(r, "X-Replace") == "new");
  CHECK(PluginFixture::upstreamHeader(r, "X-Shared") == "[]");
}

}  // namespace
}  // namespace portico::dp
