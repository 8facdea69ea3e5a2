// porticoctl's online commands (ping, dump, reset, diff, sync) run as processes against a real
// portico-cp on a real PostgreSQL: Kong's burst.yml synced with no errors and idempotently,
// diff's exit codes and output, dump taken back unchanged, select-tag ownership, reset, bad
// files that change nothing, and an unreachable CP. Each case works in its own control plane
// (--control-plane) of one shared CP, so the cases do not see each other's entities.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/e2e_cluster.h"
#include "tests/support/test_support.h"

namespace portico::testing {
namespace {

using Json = nlohmann::json;

struct Run {
  int status;
  std::string output;  // stdout and stderr
};

// One CP for the whole file (started on first use).
struct SharedCp {
  TestPostgres pg;
  std::unique_ptr<Cp> cp;
  SharedCp() {
    migrate(pg.dsn());
    cp = std::make_unique<Cp>(pg.dsn());
  }
  std::string addr() const { return "http://127.0.0.1:" + std::to_string(cp->admin_port); }
};

// Stopped (and its database dropped) by static destruction at exit.
SharedCp& shared() {
  static SharedCp s;
  return s;
}

Run porticoctl(const std::string& args, const std::string& stdin_text = "") {
  const std::string in = "/tmp/porticoctl-online-in-" + std::to_string(::getpid());
  std::ofstream(in) << stdin_text;
  const std::string cmd = "PORTICO_ADDR=" + shared().addr() + " " + binaryPath("porticoctl") +
                          " " + args + " < " + in + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) {
    out.append(buf, n);
  }
  const int status = ::pclose(p);
  ::unlink(in.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string writeFile(const std::string& name, const std::string& text) {
  const std::string path = "/tmp/porticoctl-online-" + std::to_string(::getpid()) + "-" + name;
  std::ofstream(path) << text;
  return path;
}

// A fresh control plane (config group) named `name`.
std::string newGroup(const std::string& name) {
  shared().cp->adminOk("POST", "/control-planes", Json{{"name", name}}, 201);
  return " --control-plane " + name;
}

// Every entity of one collection in a group, following the pages.
Json listAll(const std::string& group, const std::string& path) {
  Json all = Json::array();
  std::string next = "/control-planes/" + group + "/" + path + "?size=1000";
  while (!next.empty()) {
    HttpResponse r = shared().cp->admin("GET", next);
    REQUIRE(r.status == 200);
    Json body = Json::parse(r.body);
    for (auto& e : body["data"]) {
      all.push_back(e);
    }
    next = body["next"].is_string() ? body["next"].get<std::string>() : "";
  }
  return all;
}

uint64_t generationOf(const std::string& group) {
  HttpResponse r = shared().cp->admin("GET", "/control-planes/" + group + "/status");
  Json j = Json::parse(r.body, nullptr, false);
  return j.is_object() && j["configuration"]["generation"].is_number()
             ? j["configuration"]["generation"].get<uint64_t>()
             : 0;
}

const char kNoChanges[] = "Summary:\n  Created: 0\n  Updated: 0\n  Deleted: 0\n";

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

const std::string kBurst =
    sourceDir() + "/../shared/fixtures/declarative/kong-spec-fixtures-burst.yml";

TEST_CASE("porticoctl ping reports the Kong version") {
  Run r = porticoctl("ping");
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(contains(r.output, "Kong version: 3."));
  CHECK(contains(r.output, "Portico version: "));
  Run missing = porticoctl("ping --control-plane no-such-group");
  CHECK(missing.status == 1);
  CHECK(contains(missing.output, "control plane 'no-such-group' not found"));
}

TEST_CASE("porticoctl sync burst.yml: no errors, then a second sync and diff change nothing") {
  if (!std::filesystem::exists(kBurst)) {
    WARN("../shared/fixtures/declarative (Kong's burst.yml) is missing beside the checkout: "
         "skipped");
    return;
  }
  const std::string g = newGroup("burst");
  Run first = porticoctl("sync -s " + kBurst + g);
  INFO(first.output.substr(first.output.size() > 2000 ? first.output.size() - 2000 : 0));
  REQUIRE(first.status == 0);
  CHECK(!contains(first.output, "Error"));
  CHECK(contains(first.output, "creating service "));
  CHECK(contains(first.output, "creating plugin ip-restriction"));
  CHECK(listAll("burst", "services").size() == 236);
  CHECK(listAll("burst", "routes").size() == 286);
  const uint64_t generation = generationOf("burst");

  Run second = porticoctl("sync -s " + kBurst + g);
  INFO(second.output);
  CHECK(second.status == 0);
  CHECK(second.output == kNoChanges);
  Run diff = porticoctl("diff --non-zero-exit-code -s " + kBurst + g);
  CHECK(diff.status == 0);
  CHECK(diff.output == kNoChanges);
  CHECK(generationOf("burst") == generation);

  SECTION("dump writes a file that sync takes back unchanged") {
    for (const char* name : {"dump.yaml", "dump.json"}) {
      const std::string out = writeFile(name, "");
      Run dump = porticoctl("dump -o " + out + g);
      INFO(dump.output);
      REQUIRE(dump.status == 0);
      CHECK(contains(dump.output, "Wrote 1090 entities to " + out));
      Run again = porticoctl("sync -s " + out + g);
      INFO(again.output);
      CHECK(again.status == 0);
      CHECK(again.output == kNoChanges);
      CHECK(porticoctl("diff --non-zero-exit-code -s " + out + g).status == 0);
      ::unlink(out.c_str());
    }
    Run to_stdout = porticoctl("dump -o -" + g);
    CHECK(to_stdout.output.rfind("_format_version: \"3.0\"\n", 0) == 0);
    CHECK(generationOf("burst") == generation);
  }
}

TEST_CASE("porticoctl diff shows a changed file and exits 2 with --non-zero-exit-code") {
  const std::string g = newGroup("changes");
  const std::string v1 = writeFile("v1.yml", R"(_format_version: "3.0"
services:
- name: s1
  url: http://a.test
  routes:
  - name: r1
    paths: [/one]
  - name: r2
    paths: [/two]
plugins:
- name: rate-limiting
  service: s1
  config:
    minute: 10
)");
  Run created = porticoctl("sync -s " + v1 + g);
  INFO(created.output);
  REQUIRE(created.status == 0);
  CHECK(created.output ==
        "creating service s1\n"
        "creating route r1\n"
        "creating route r2\n"
        "creating plugin rate-limiting for service s1\n"
        "Summary:\n  Created: 4\n  Updated: 0\n  Deleted: 0\n");
  const std::string v2 = writeFile("v2.yml", R"(_format_version: "3.0"
services:
- name: s1
  url: http://b.test:8080
  routes:
  - name: r1
    paths: [/one]
  - name: r3
    paths: [/three]
plugins:
- name: rate-limiting
  service: s1
  config:
    minute: 20
)");
  const uint64_t generation = generationOf("changes");
  Run plain = porticoctl("diff -s " + v2 + g);
  CHECK(plain.status == 0);
  Run diff = porticoctl("diff --non-zero-exit-code -s " + v2 + g);
  INFO(diff.output);
  CHECK(diff.status == 2);
  CHECK(diff.output == plain.output);
  // Sorted: creates and updates parents first, then deletes; changed fields below each update.
  CHECK(diff.output ==
        "updating service s1\n"
        "    host: \"a.test\" -> \"b.test\"\n"
        "    port: 80 -> 8080\n"
        "creating route r3\n"
        "updating plugin rate-limiting for service s1\n"
        "    config.minute: 10 -> 20\n"
        "deleting route r2\n"
        "Summary:\n  Created: 1\n  Updated: 2\n  Deleted: 1\n");
  CHECK(generationOf("changes") == generation);  // diff writes nothing
  Run sync = porticoctl("sync -s " + v2 + g);
  INFO(sync.output);
  CHECK(sync.status == 0);
  CHECK(contains(sync.output, "Summary:\n  Created: 1\n  Updated: 2\n  Deleted: 1\n"));
  CHECK(porticoctl("diff --non-zero-exit-code -s " + v2 + g).status == 0);
  Json routes = listAll("changes", "routes");
  CHECK(routes.size() == 2);
  ::unlink(v1.c_str());
  ::unlink(v2.c_str());
}

TEST_CASE("porticoctl --select-tag: each team owns only its tagged entities") {
  const std::string g = newGroup("teams");
  const std::string a = writeFile("team-a.yml", R"(_format_version: "3.0"
services:
- name: a-svc
  url: http://a.test
  routes:
  - name: a-route
    paths: [/a]
consumers:
- username: alice
  basicauth_credentials:
  - username: alice
    password: s3cret
  keyauth_credentials:
  - key: alice-key
)");
  const std::string b = writeFile("team-b.yml", R"(_format_version: "3.0"
services:
- name: b-svc
  url: http://b.test
  routes:
  - name: b-route
    paths: [/b]
upstreams:
- name: b-up
  targets:
  - target: 10.0.0.1:80
)");
  REQUIRE(porticoctl("sync --select-tag team-a -s " + a + g).status == 0);
  Run sync_b = porticoctl("sync --select-tag team-b -s " + b + g);
  INFO(sync_b.output);
  REQUIRE(sync_b.status == 0);
  CHECK(!contains(sync_b.output, "deleting"));
  // Created entities carry the team's tag.
  for (const Json& s : listAll("teams", "services")) {
    CHECK(s["tags"] == Json::array({s["name"] == "a-svc" ? "team-a" : "team-b"}));
  }
  CHECK(listAll("teams", "services").size() == 2);
  // Each team's file is in sync with its own entities (a basic-auth password compares
  // against its stored hash); neither plans to delete the other's.
  CHECK(porticoctl("diff --non-zero-exit-code --select-tag team-a -s " + a + g).output ==
        kNoChanges);
  CHECK(porticoctl("sync --select-tag team-b -s " + b + g).output == kNoChanges);
  // A team's dump holds only its entities and its select tag.
  Run dump = porticoctl("dump -o - --select-tag team-b" + g);
  CHECK(contains(dump.output, "b-svc"));
  CHECK(!contains(dump.output, "a-svc"));
  CHECK(contains(dump.output, "select_tags:\n  - team-b"));
  // Team b cannot take team a's service: the create fails, says why, and stops the sync
  // before the route that needs it.
  const std::string grab = writeFile("grab.yml", R"(_format_version: "3.0"
services:
- name: a-svc
  url: http://z.test
  routes:
  - name: z-route
    paths: [/z]
)");
  Run conflict = porticoctl("sync --select-tag team-b -s " + grab + g);
  INFO(conflict.output);
  CHECK(conflict.status == 1);
  CHECK(contains(conflict.output, "Error: creating service a-svc: HTTP "));
  CHECK(contains(conflict.output, "exists without the select tags"));
  CHECK(contains(conflict.output, "the later steps were not run"));
  CHECK(!contains(conflict.output, "creating route z-route\n"));
  ::unlink(grab.c_str());
  CHECK(porticoctl("sync --select-tag team-b -s " + b + g).status == 0);
  // Reset of team b leaves team a alone.
  Run reset = porticoctl("reset --force --select-tag team-b" + g);
  INFO(reset.output);
  CHECK(reset.status == 0);
  CHECK(contains(reset.output, "Deleted: 4"));
  Json left = listAll("teams", "services");
  REQUIRE(left.size() == 1);
  CHECK(left[0]["name"] == "a-svc");
  CHECK(porticoctl("diff --non-zero-exit-code --select-tag team-a -s " + a + g).status == 0);
  ::unlink(a.c_str());
  ::unlink(b.c_str());
}

TEST_CASE("porticoctl reset deletes everything, only with --force when not interactive") {
  const std::string g = newGroup("reset");
  const std::string f = writeFile("reset.yml", R"(_format_version: "3.0"
services:
- name: s
  url: http://a.test
  routes:
  - name: r
    paths: [/]
    plugins:
    - name: cors
consumers:
- username: c
  acls:
  - group: g
upstreams:
- name: u
  targets:
  - target: 10.0.0.2:8080
)");
  REQUIRE(porticoctl("sync -s " + f + g).status == 0);
  Run refused = porticoctl("reset" + g);
  CHECK(refused.status == 1);
  CHECK(contains(refused.output, "run it with --force"));
  CHECK(listAll("reset", "services").size() == 1);
  Run reset = porticoctl("reset --force" + g);
  INFO(reset.output);
  CHECK(reset.status == 0);
  CHECK(contains(reset.output, "Summary:\n  Created: 0\n  Updated: 0\n  Deleted: 7\n"));
  for (const char* path : {"services", "routes", "plugins", "consumers", "acls", "upstreams"}) {
    CHECK(listAll("reset", path).empty());
  }
  CHECK(porticoctl("reset --force" + g).output == kNoChanges);
  ::unlink(f.c_str());
}

TEST_CASE("porticoctl sync of a bad file exits 1 with the error and changes nothing") {
  const std::string g = newGroup("bad");
  const std::string good = writeFile("good.yml", R"(_format_version: "3.0"
services:
- name: keep
  url: http://a.test
)");
  REQUIRE(porticoctl("sync -s " + good + g).status == 0);
  const uint64_t generation = generationOf("bad");
  const std::string unknown_key = writeFile("unknown.yml", R"(_format_version: "3.0"
services:
- name: other
  url: http://b.test
  colour: blue
)");
  Run r1 = porticoctl("sync -s " + unknown_key + g);
  CHECK(r1.status == 1);
  CHECK(r1.output == unknown_key + ":5: services/0 colour: unknown field\n");
  const std::string dangling = writeFile("dangling.yml", R"(_format_version: "3.0"
services:
- name: other
  url: http://b.test
routes:
- name: r
  paths: [/]
  service: nope
)");
  Run r2 = porticoctl("sync -s " + dangling + g);
  INFO(r2.output);
  CHECK(r2.status == 1);
  CHECK(contains(r2.output, dangling + ":8:"));
  CHECK(contains(r2.output, "nope"));
  CHECK(porticoctl("diff -s " + dangling + g).status == 1);
  CHECK(generationOf("bad") == generation);
  Json services = listAll("bad", "services");
  REQUIRE(services.size() == 1);
  CHECK(services[0]["name"] == "keep");
  ::unlink(good.c_str());
  ::unlink(unknown_key.c_str());
  ::unlink(dangling.c_str());
}

TEST_CASE("porticoctl: several -s files are merged; an unreachable CP or https exits 1") {
  const std::string g = newGroup("merged");
  const std::string svc = writeFile("svc.yml", "_format_version: \"3.0\"\nservices:\n"
                                               "- name: s\n  url: http://a.test\n");
  const std::string rt = writeFile("rt.json", R"({"_format_version": "3.0", "routes": [
    {"name": "r", "paths": ["/"], "service": "s"}]})");
  Run r = porticoctl("sync -s " + svc + " --state " + rt + g);
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(contains(r.output, "Created: 2"));
  CHECK(porticoctl("diff --non-zero-exit-code -s " + rt + " -s " + svc + g).status == 0);
  // '-s -' reads stdin: the service alone plans to delete the route.
  Run piped = porticoctl("diff -s -" + g, "_format_version: \"3.0\"\nservices:\n"
                                           "- name: s\n  url: http://a.test\n");
  CHECK(piped.status == 0);
  CHECK(piped.output == "deleting route r\nSummary:\n  Created: 0\n  Updated: 0\n  Deleted: 1\n");

  const std::string down = "http://127.0.0.1:" + std::to_string(freePort());
  Run unreachable = porticoctl("sync --kong-addr " + down + " -s " + svc);
  CHECK(unreachable.status == 1);
  CHECK(contains(unreachable.output, "Error: cannot reach the Admin API at " + down));
  CHECK(porticoctl("ping --kong-addr " + down).status == 1);
  CHECK(porticoctl("dump -o - --kong-addr " + down).status == 1);
  Run https = porticoctl("ping --kong-addr https://127.0.0.1:8444");
  CHECK(https.status == 1);
  CHECK(contains(https.output, "https is not supported"));
  Run usage = porticoctl("sync --bogus");
  CHECK(usage.status == 1);
  CHECK(contains(usage.output, "unknown option '--bogus'"));
  ::unlink(svc.c_str());
  ::unlink(rt.c_str());
}

TEST_CASE("porticoctl --headers carries an admin token to a CP that requires one") {
  TestPostgres pg;
  migrate(pg.dsn());
  Process create(binaryPath("portico-cp"), {"--pg_dsn=" + pg.dsn(), "admins", "create", "ci"});
  REQUIRE(create.wait(std::chrono::seconds(20)) == 0);
  const std::string log = create.log();
  const size_t at = log.find("ptk_");
  REQUIRE(at != std::string::npos);
  const std::string token = log.substr(at, log.find_first_of("\r\n", at) - at);
  Cp cp(pg.dsn(), {"--cluster_insecure", "--admin_auth=on"});
  const std::string addr = " --kong-addr http://127.0.0.1:" + std::to_string(cp.admin_port);
  const std::string f = writeFile("auth.yml", "_format_version: \"3.0\"\nservices:\n"
                                              "- name: s\n  url: http://a.test\n");
  Run refused = porticoctl("sync -s " + f + addr);
  CHECK(refused.status == 1);
  CHECK(contains(refused.output, "HTTP 401"));
  Run ok = porticoctl("sync -s " + f + addr + " --headers 'Kong-Admin-Token: " + token + "'");
  INFO(ok.output);
  CHECK(ok.status == 0);
  CHECK(contains(ok.output, "creating service s"));
  CHECK(porticoctl("diff --non-zero-exit-code -s " + f + addr + " --headers Kong-Admin-Token:" +
                   token)
            .status == 0);
  ::unlink(f.c_str());
}

}  // namespace
}  // namespace portico::testing
