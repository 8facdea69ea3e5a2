#include "control_plane/console/console_site.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "control_plane/console/assets.h"

namespace portico::cp::console {
namespace {

ApiRequest get(std::string target, std::vector<std::pair<std::string, std::string>> headers = {}) {
  ApiRequest r;
  r.method = "GET";
  r.target = std::move(target);
  r.headers = std::move(headers);
  return r;
}

std::string headerOf(const ApiResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

TEST_CASE("the console's bundle is embedded: index.html, app.js, app.css") {
  for (const char* path : {"/index.html", "/app.js", "/app.css"}) {
    INFO(path);
    bool found = false;
    for (const Asset& a : embeddedAssets()) {
      if (a.path == path) {
        found = true;
        CHECK(a.body.size() > 100);
        CHECK(a.etag.size() > 2);
      }
    }
    CHECK(found);
  }
}

TEST_CASE("/ is the app, with a CSP that runs only its own script") {
  const ApiResponse r = handleConsoleRequest({}, get("/?x=1"));
  CHECK(r.status == 200);
  CHECK(r.content_type == "text/html; charset=utf-8");
  CHECK(r.body.find("/app.js") != std::string::npos);
  CHECK(headerOf(r, "Content-Security-Policy").find("script-src 'self'") != std::string::npos);
  CHECK(headerOf(r, "X-Frame-Options") == "DENY");
  CHECK(headerOf(r, "X-Content-Type-Options") == "nosniff");
  CHECK(headerOf(r, "Cache-Control") == "no-cache");
}

TEST_CASE("a file's ETag revalidates to 304 without a body") {
  const ApiResponse first = handleConsoleRequest({}, get("/app.js"));
  REQUIRE(first.status == 200);
  CHECK(first.content_type == "text/javascript; charset=utf-8");
  const std::string etag = headerOf(first, "ETag");
  const ApiResponse again = handleConsoleRequest({}, get("/app.js", {{"if-none-match", etag}}));
  CHECK(again.status == 304);
  CHECK(again.body.empty());
  CHECK(handleConsoleRequest({}, get("/app.js", {{"if-none-match", "\"other\""}})).status == 200);
}

TEST_CASE("/config.json says where the Admin API is and whether it wants a token") {
  ConsoleOptions o;
  o.admin_port = 18001;
  o.admin_tls = true;
  o.admin_auth = true;
  const ApiResponse r = handleConsoleRequest(o, get("/config.json"));
  CHECK(r.status == 200);
  CHECK(headerOf(r, "Cache-Control") == "no-store");
  const auto j = nlohmann::json::parse(r.body);
  CHECK(j == nlohmann::json{{"admin_api_url", ""},
                            {"admin_api_port", 18001},
                            {"admin_api_scheme", "https"},
                            {"admin_auth", true}});
  o.admin_api_url = "https://admin.example.com:8444";
  CHECK(nlohmann::json::parse(consoleConfigJson(o))["admin_api_url"] ==
        "https://admin.example.com:8444");
}

TEST_CASE("anything else: 404; other methods: 405; the Admin API is not reachable here") {
  for (const char* path : {"/services", "/status", "/../index.html", "/index.html/", "/config.json/x"}) {
    INFO(path);
    CHECK(handleConsoleRequest({}, get(path)).status == 404);
  }
  for (const char* method : {"POST", "PUT", "DELETE", "HEAD", "OPTIONS"}) {
    ApiRequest r = get("/");
    r.method = method;
    const ApiResponse a = handleConsoleRequest({}, r);
    CHECK(a.status == 405);
    CHECK(headerOf(a, "Allow") == "GET");
  }
}

}  // namespace
}  // namespace portico::cp::console
