// portico-dp --declarative_config with Kong's format, end to end: a real DP process on free
// ports proxies to real upstreams from a kong.yml, SIGHUP with a bad file keeps the running
// config (the log names the file's line), SIGHUP with a good one switches to it; Kong's and
// decK's fixture files start a DP, Supabase's is refused in one line.
#include <sys/stat.h>

#include <csignal>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

namespace portico::testing {
namespace {

using Json = nlohmann::json;

struct Dp {
  int proxy_port = freePort();
  int status_port = freePort();
  std::unique_ptr<Process> process;

  explicit Dp(const std::string& config) {
    process = std::make_unique<Process>(
        binaryPath("portico-dp"),
        std::vector<std::string>{"--declarative_config=" + config,
                                 "--proxy_listen=127.0.0.1:" + std::to_string(proxy_port),
                                 "--proxy_ssl_listen=off",
                                 "--status_listen=127.0.0.1:" + std::to_string(status_port),
                                 "--workers=2"});
  }
  bool ready() {
    return waitFor([&] {
      return httpRequest("127.0.0.1", status_port, "GET", "/status/ready").status == 200;
    }, std::chrono::seconds(15));
  }
  HttpResponse get(const std::string& target) {
    return httpRequest("127.0.0.1", proxy_port, "GET", target);
  }
  Json status() {
    return Json::parse(httpRequest("127.0.0.1", status_port, "GET", "/status").body, nullptr,
                       false);
  }
  void hup() { ::kill(process->pid(), SIGHUP); }
};

void write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

std::string tempPath(const std::string& name) {
  return "/tmp/portico-dbless-e2e-" + std::to_string(::getpid()) + "-" + name;
}

std::string fixture(const std::string& name) {
  return sourceDir() + "/../shared/fixtures/declarative/" + name;
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

TEST_CASE("dbless: serves kong.yml, a bad file on SIGHUP keeps it, a good one replaces it") {
  EchoUpstream first;
  EchoUpstream second;
  const std::string path = tempPath("kong.yml");
  // Format 2.1: nested routes and plugins, a route regex written the 2.x way.
  write(path, R"(_format_version: "2.1"
_transform: true
services:
- name: one
  url: http://127.0.0.1:)" + std::to_string(first.port()) + R"(
  _comment: the first upstream
  routes:
  - name: one
    strip_path: true
    paths: [/one]
  - name: numbers
    strip_path: false
    paths: ['/num/\d+$']
  plugins:
  - name: request-transformer
    config:
      add:
        headers: ["x-config:one"]
)");
  Dp dp(path);
  REQUIRE(dp.ready());
  INFO(dp.process->log());
  CHECK(dp.status()["generation"] == 1);

  HttpResponse r = dp.get("/one/thing");
  REQUIRE(r.status == 200);
  Json echo = Json::parse(r.body);
  CHECK(echo["path"] == "/thing");
  CHECK(echo["headers"]["x-config"] == "one");
  CHECK(dp.get("/num/42").status == 200);     // migrated to ~/num/\d+$
  CHECK(dp.get("/num/abc").status == 404);

  SECTION("bad files on SIGHUP: the running config stays, the log names the line") {
    write(path, R"(_format_version: "3.0"
services:
- name: two
  host: 127.0.0.1
  routes:
  - name: two
    paths: [/two]
    bogus: 1
)");
    dp.hup();
    REQUIRE(waitFor([&] {
      return dp.process->log().find("keeping the running config") != std::string::npos;
    }, std::chrono::seconds(10)));
    CHECK(dp.process->log().find(":8: services/0/routes/0 bogus: unknown field") !=
          std::string::npos);
    CHECK(dp.get("/one/thing").status == 200);
    CHECK(dp.get("/two").status == 404);
    CHECK(dp.status()["generation"] == 1);

    // A YAML bomb, then a file that is not there any more: still the first config.
    std::string bomb = "_format_version: \"3.0\"\n_ignore:\n- &a0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int i = 1; i <= 9; ++i) {
      bomb += "- &a" + std::to_string(i) + " [";
      for (int k = 0; k < 10; ++k) {
        bomb += (k ? ", *a" : "*a") + std::to_string(i - 1);
      }
      bomb += "]\n";
    }
    write(path, bomb);
    dp.hup();
    REQUIRE(waitFor([&] {
      return dp.process->log().find("aliases included") != std::string::npos;
    }, std::chrono::seconds(10)));
    ::unlink(path.c_str());
    dp.hup();
    REQUIRE(waitFor([&] {
      return dp.process->log().find("cannot read " + path) != std::string::npos;
    }, std::chrono::seconds(10)));
    CHECK(dp.get("/one/thing").status == 200);
    CHECK(dp.process->running());
  }

  SECTION("a good file on SIGHUP replaces the config; the same file again changes nothing") {
    write(path, R"(_format_version: "3.0"
services:
- name: two
  host: 127.0.0.1
  port: )" + std::to_string(second.port()) + R"(
routes:
- name: two
  service: two
  paths: [/two]
  strip_path: true
plugins:
- name: request-transformer
  route: two
  config:
    add:
      headers: ["x-config:two"]
)");
    dp.hup();
    REQUIRE(waitFor([&] { return dp.get("/two/x").status == 200; }, std::chrono::seconds(10)));
    HttpResponse two = dp.get("/two/x");
    CHECK(Json::parse(two.body)["headers"]["x-config"] == "two");
    CHECK(dp.get("/one/thing").status == 404);
    CHECK(dp.status()["generation"] == 2);
    CHECK_FALSE(second.received().empty());
    dp.hup();
    REQUIRE(waitFor([&] {
      return dp.process->log().find("is unchanged") != std::string::npos;
    }, std::chrono::seconds(10)));
    CHECK(dp.status()["generation"] == 2);
  }
  ::unlink(path.c_str());
}

TEST_CASE("dbless: Kong's and decK's fixture files start a DP; Supabase's is refused") {
  const std::string burst = fixture("kong-spec-fixtures-burst.yml");
  if (!exists(burst)) {
    WARN("skipped: ../shared/fixtures/declarative is absent");
    return;
  }
  for (const char* name : {"kong-spec-fixtures-burst.yml", "deck-dump-001-entities-with-tags.yaml",
                           "deck-convert-28x-routes.yaml"}) {
    Dp dp(fixture(name));
    INFO(name << ": " << dp.process->log());
    CHECK(dp.ready());
  }
  Process supabase(binaryPath("portico-dp"),
                   {"--declarative_config=" + fixture("supabase-docker-kong.yml"),
                    "--proxy_listen=127.0.0.1:" + std::to_string(freePort()),
                    "--proxy_ssl_listen=off",
                    "--status_listen=127.0.0.1:" + std::to_string(freePort())});
  CHECK(supabase.wait(std::chrono::seconds(10)) != 0);
  const std::string log = supabase.log();
  INFO(log);
  CHECK(log.find("portico-dp: invalid --declarative_config") != std::string::npos);
  CHECK(log.find("line 193: services/9 protocol: expected one of: grpc, grpcs, http, https, "
                 "tcp, tls, tls_passthrough, udp") != std::string::npos);
}

}  // namespace
}  // namespace portico::testing
