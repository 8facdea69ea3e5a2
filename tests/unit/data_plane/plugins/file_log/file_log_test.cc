// file-log: schema; Kong's serializer field for field through the real proxy (proxied,
// short-circuited by key-auth, authenticated, no route matched); reopen after a rename with
// SIGUSR1's hook and with reopen=true.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

#include "data_plane/plugins/logging/log_files.h"
#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/http_log/log_receivers.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::PluginFixture;

std::string tempPath(const std::string& tag) {
  static int n = 0;
  return "/tmp/portico-file-log-" + std::to_string(::getpid()) + "-" + tag + "-" +
         std::to_string(++n) + ".log";
}

std::vector<std::string> readLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

// The last line of `path` as JSON (waits for `count` lines: onLog runs after the response).
Json lastEntry(const std::string& path, size_t count) {
  REQUIRE(testing::waitFor([&] { return readLines(path).size() >= count; }));
  const std::vector<std::string> lines = readLines(path);
  REQUIRE(lines.size() == count);
  return Json::parse(lines.back());
}

uint64_t nowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

TEST_CASE("file-log schema", "[file-log]") {
  Json d = testing::pluginDefaults({{"name", "file-log"}, {"config", {{"path", "/tmp/x.log"}}}});
  CHECK(d["config"] == Json({{"path", "/tmp/x.log"}, {"reopen", false},
                             {"custom_fields_by_lua", nullptr}}));
  CHECK(d["protocols"] == Json({"grpc", "grpcs", "http", "https"}));
  CHECK(testing::pluginSchemaError({{"name", "file-log"}, {"config", Json::object()}}) ==
        "config.path: required field missing");
  for (const char* bad : {" /tmp/x", "/tmp/x ", "/tmp/*x", "/tmp/a&b", "/tmp/%x", "/tmp/`x`",
                          "x"}) {
    INFO(bad);
    CHECK(testing::pluginSchemaError({{"name", "file-log"}, {"config", {{"path", bad}}}}) ==
          "config.path: not a valid filename");
  }
  CHECK(testing::pluginSchemaError(
            {{"name", "file-log"}, {"config", {{"path", "/tmp/a b.log"}}}}) == "");
  CHECK(testing::pluginSchemaError(
            {{"name", "file-log"},
             {"config", {{"path", "/tmp/x.log"}, {"custom_fields_by_lua", {{"a", "return 1"}}}}}}) ==
        "config.custom_fields_by_lua: Lua code is not supported by Portico: "
        "custom_fields_by_lua must be empty or null");
  CHECK(testing::pluginSchemaError({{"name", "file-log"},
                                    {"config",
                                     {{"path", "/tmp/x.log"},
                                      {"custom_fields_by_lua", Json::object()}}}}) == "");
  CHECK(testing::pluginSchemaError(
            {{"name", "file-log"}, {"config", {{"path", "/tmp/x.log"}, {"reopen", "yes"}}}}) ==
        "config.reopen: expected a boolean");
}

TEST_CASE("file-log: a proxied request, Kong's serializer field for field", "[file-log]") {
  PluginFixture f;
  const std::string path = tempPath("proxied");
  f.add("plugins", {{"name", "file-log"}, {"config", {{"path", path}}}});
  REQUIRE(f.apply().ToString() == "OK");
  const uint64_t before = nowMs();
  testing::WireResponse r = f.get(
      "/x/y?a=1&b=2&b=3&flag&sp=a+b%21",
      "Authorization: Basic c2VjcmV0\r\nProxy-Authorization: x\r\nX-Dup: 1\r\nX-Dup: 2\r\n");
  REQUIRE(r.status == 200);
  Json e = lastEntry(path, 1);
  INFO(e.dump(2));
  const std::string port = std::to_string(f.port());
  CHECK(e["request"]["uri"] == "/x/y?a=1&b=2&b=3&flag&sp=a+b%21");
  // The host without its port, then the listener's port (Kong's var.host, ctx.host_port).
  CHECK(e["request"]["url"] == "http://plugins.test:" + port + "/x/y?a=1&b=2&b=3&flag&sp=a+b%21");
  CHECK(e["request"]["querystring"] ==
        Json({{"a", "1"}, {"b", {"2", "3"}}, {"flag", true}, {"sp", "a b!"}}));
  CHECK(e["request"]["method"] == "GET");
  CHECK(e["request"]["headers"]["authorization"] == "REDACTED");
  CHECK(e["request"]["headers"]["proxy-authorization"] == "REDACTED");
  CHECK(e["request"]["headers"]["x-dup"] == Json({"1", "2"}));
  CHECK(e["request"]["headers"]["host"] == "plugins.test");
  CHECK(e["request"]["size"].get<int64_t>() > 100);
  CHECK_FALSE(e["request"].contains("tls"));
  CHECK(e["upstream_uri"] == "/x/y?a=1&b=2&b=3&flag&sp=a+b%21");
  CHECK(e["upstream_status"] == "200");
  CHECK(e["response"]["status"] == 200);
  CHECK(e["response"]["size"].get<int64_t>() > 0);
  CHECK(e["response"]["headers"]["via"].get<std::string>().find("portico/") != std::string::npos);
  CHECK(e["response"]["headers"].contains("content-length"));
  for (const char* k : {"kong", "proxy", "request", "receive"}) {
    CHECK(e["latencies"][k].is_number_integer());
    CHECK(e["latencies"][k].get<int64_t>() >= 0);
  }
  REQUIRE(e["tries"].size() == 1);
  CHECK(e["tries"][0]["ip"] == "127.0.0.1");
  CHECK(e["tries"][0]["port"] == f.config().services(0).port());
  CHECK_FALSE(e.contains("authenticated_entity"));
  CHECK_FALSE(e.contains("consumer"));
  CHECK(e["route"]["id"] == f.routeId());
  CHECK(e["route"]["name"] == "r");
  CHECK(e["route"]["paths"] == Json({"/"}));
  CHECK(e["route"]["ws_id"] == "00000000-0000-0000-0000-000000000000");
  CHECK(e["route"]["service"] == Json({{"id", f.serviceId()}}));
  CHECK_FALSE(e["route"].contains("hosts"));  // Kong's cached rows carry no null field
  CHECK(e["service"]["id"] == f.serviceId());
  CHECK(e["service"]["name"] == "svc");
  CHECK(e["service"]["host"] == "127.0.0.1");
  CHECK(e["client_ip"] == "127.0.0.1");
  CHECK(e["started_at"].get<uint64_t>() >= before);
  CHECK(e["started_at"].get<uint64_t>() <= nowMs());
  CHECK(e["source"] == "service");
  CHECK(e["workspace"] == "00000000-0000-0000-0000-000000000000");
  CHECK(e["workspace_name"] == "default");
  std::remove(path.c_str());
}

TEST_CASE("file-log: key-auth's 401, an authenticated consumer, correlation_id", "[file-log]") {
  PluginFixture f;
  const std::string path = tempPath("auth");
  f.add("plugins", {{"name", "file-log"}, {"config", {{"path", path}}}});
  f.add("plugins", {{"name", "key-auth"}});
  f.add("plugins", {{"name", "correlation-id"}});
  Json consumer = f.add("consumers", {{"username", "bob"}, {"custom_id", "c-1"}});
  Json cred = f.add("keyauth_credentials",
                    {{"consumer", {{"id", consumer["id"]}}}, {"key", "k1"}});
  REQUIRE(f.apply().ToString() == "OK");

  REQUIRE(f.send("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody").status ==
          401);
  Json e = lastEntry(path, 1);
  INFO(e.dump(2));
  CHECK(e["response"]["status"] == 401);
  CHECK(e["source"] == "kong");
  CHECK(e["upstream_uri"] == "");
  CHECK(e["upstream_status"] == "");
  CHECK(e["latencies"]["proxy"] == -1);
  CHECK_FALSE(e.contains("tries"));
  CHECK(e["request"]["headers"]["content-length"] == "4");
  CHECK(e["response"]["headers"]["www-authenticate"] == "Key");
  CHECK(e["route"]["id"] == f.routeId());
  CHECK(e["correlation_id"].is_string());

  REQUIRE(f.get("/x", "apikey: k1\r\n").status == 200);
  e = lastEntry(path, 2);
  CHECK(e["consumer"]["id"] == consumer["id"]);
  CHECK(e["consumer"]["username"] == "bob");
  CHECK(e["consumer"]["custom_id"] == "c-1");
  CHECK(e["consumer"]["ws_id"] == "00000000-0000-0000-0000-000000000000");
  CHECK(e["authenticated_entity"] == Json({{"id", cred["id"]}}));
  CHECK(e["request"]["headers"]["apikey"] == "k1");  // Kong redacts Authorization only
  std::remove(path.c_str());
}

TEST_CASE("file-log: no route matched (a global instance logs the 404)", "[file-log]") {
  PluginFixture f;
  const std::string path = tempPath("noroute");
  f.config().clear_routes();
  f.add("plugins", {{"name", "file-log"}, {"config", {{"path", path}}}});
  REQUIRE(f.apply().ToString() == "OK");
  REQUIRE(f.get("/nowhere?q=1", "X-Hello: there\r\n").status == 404);
  Json e = lastEntry(path, 1);
  INFO(e.dump(2));
  CHECK(e["response"]["status"] == 404);
  CHECK(e["request"]["headers"]["x-hello"] == "there");
  CHECK(e["request"]["querystring"] == Json({{"q", "1"}}));
  CHECK_FALSE(e.contains("route"));
  CHECK_FALSE(e.contains("service"));
  CHECK(e["source"] == "kong");
  std::remove(path.c_str());
}

TEST_CASE("file-log: SIGUSR1 reopens after a rename; reopen=true reopens every time",
          "[file-log]") {
  PluginFixture f;
  const std::string path = tempPath("rotate");
  const std::string path2 = tempPath("reopen");
  f.add("plugins", {{"name", "file-log"}, {"config", {{"path", path}}}});
  const std::string other = f.addRoute("r2", "/other", f.serviceId());
  f.add("plugins", {{"name", "file-log"},
                    {"route", {{"id", other}}},
                    {"config", {{"path", path2}, {"reopen", true}}}});
  REQUIRE(f.apply().ToString() == "OK");

  REQUIRE(f.get("/a").status == 200);
  lastEntry(path, 1);
  REQUIRE(std::rename(path.c_str(), (path + ".1").c_str()) == 0);
  REQUIRE(f.get("/b").status == 200);  // still the renamed file (the descriptor is kept)
  REQUIRE(testing::waitFor([&] { return readLines(path + ".1").size() == 2; }));
  plugins::logging::reopenLogFiles();  // what portico-dp does on SIGUSR1
  REQUIRE(f.get("/c").status == 200);
  Json e = lastEntry(path, 1);
  CHECK(e["request"]["uri"] == "/c");
  CHECK(readLines(path + ".1").size() == 2);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);

  REQUIRE(f.get("/other/1").status == 200);
  lastEntry(path2, 1);
  REQUIRE(std::rename(path2.c_str(), (path2 + ".1").c_str()) == 0);
  REQUIRE(f.get("/other/2").status == 200);
  e = lastEntry(path2, 1);  // a new file, without any signal
  CHECK(e["request"]["uri"] == "/other/2");
  for (const std::string& p : {path, path + ".1", path2, path2 + ".1"}) {
    std::remove(p.c_str());
  }
}

TEST_CASE("file-log: a path that cannot be opened fails the write, not the request",
          "[file-log]") {
  PluginFixture f;
  f.add("plugins", {{"name", "file-log"}, {"config", {{"path", "/nonexistent-dir/x.log"}}}});
  REQUIRE(f.apply().ToString() == "OK");
  const double before = testing::metricValue(f.metrics(), "portico_dp_file_log_errors_total");
  CHECK(f.get("/x").status == 200);
  CHECK(testing::waitFor([&] {
    return testing::metricValue(f.metrics(), "portico_dp_file_log_errors_total") == before + 1;
  }));
}

}  // namespace
}  // namespace portico::dp
