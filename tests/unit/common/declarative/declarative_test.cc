// Kong's declarative format (common/declarative/declarative.h): one TEST_CASE per rule and
// per bad input, with Kong's messages, and every file of ../shared/fixtures/declarative.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include <catch2/catch.hpp>

#include "common/config/entities.h"
#include "common/declarative/declarative.h"

namespace portico::declarative {
namespace {

LoadResult load(const std::string& text) { return loadDeclarative(text); }

std::string fixture(const std::string& name) {
  const char* src = std::getenv("PORTICO_SOURCE_DIR");
  return std::string(src != nullptr ? src : ".") + "/../shared/fixtures/declarative/" + name;
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string firstMessage(const LoadResult& r) {
  return r.problems.empty() ? "" : r.problems.front().message;
}

TEST_CASE("declarative: ids are Kong's UUIDv5 of the endpoint key or cache key") {
  CHECK(uuid5("fd02801f-0957-4a15-a55a-c8d9606f30b5", "services") ==
        "90050c4f-539a-5bd9-bfb5-2ff1c430ca18");
  CHECK(entityUuid("services", "foo") == "2933fbcc-9d7c-54a7-a984-fe2bde836cea");
  LoadResult r = load(R"(_format_version: "3.0"
services:
- name: foo
  url: http://example.test:8080/api
  routes:
  - name: r1
    paths: [/x]
  plugins:
  - name: key-auth
upstreams:
- name: up
  targets:
  - target: 10.0.0.1:80
consumers:
- username: bob
  acls:
  - group: admins
)");
  INFO(r.describe("t.yml"));
  REQUIRE(r.ok());
  const auto& s = r.snapshot;
  REQUIRE(s.services_size() == 1);
  CHECK(s.services(0).id() == "2933fbcc-9d7c-54a7-a984-fe2bde836cea");
  CHECK(s.services(0).host() == "example.test");
  CHECK(s.services(0).port() == 8080);
  CHECK(s.services(0).path() == "/api");
  REQUIRE(s.routes_size() == 1);
  CHECK(s.routes(0).id() == "4726a05a-d550-537e-9fc3-a07c7a1188c7");
  CHECK(s.routes(0).service_id() == s.services(0).id());
  REQUIRE(s.plugins_size() == 1);
  CHECK(s.plugins(0).id() == "6225acf7-9b86-59b0-9105-6f7898fd6007");
  CHECK(s.plugins(0).service().id() == s.services(0).id());
  REQUIRE(s.targets_size() == 1);
  CHECK(s.targets(0).id() == "3050f055-8d6c-524c-a04c-365a0390bc2c");
  REQUIRE(s.acls_size() == 1);
  CHECK(s.acls(0).id() == "539de5d8-b10b-5e08-be89-24e1da381883");
  // The same file twice: the same snapshot.
  CHECK(load(R"(_format_version: "3.0"
services: [{name: foo, host: a, routes: [{paths: [/]}]}]
)").snapshot.routes(0).id() == load(R"(_format_version: "3.0"
services: [{name: foo, host: a, routes: [{paths: [/]}]}]
)").snapshot.routes(0).id());
}

TEST_CASE("declarative: _format_version is required, a string, and one Kong knows") {
  LoadResult missing = load("services: []\n");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.errorBody()["fields"] ==
        nlohmann::json({{"_format_version", "required field missing"}}));
  CHECK(missing.errorBody()["code"] == 14);
  CHECK(missing.errorBody()["name"] == "invalid declarative configuration");
  LoadResult number = load("_format_version: 1.1\n");
  CHECK(firstMessage(number) == "expected a string");
  LoadResult unknown = load("_format_version: \"4.0\"\n");
  CHECK(firstMessage(unknown) == "expected one of: 1.1, 2.1, 3.0");
  CHECK(unknown.errorBody()["message"] ==
        "declarative config is invalid: {_format_version=\"expected one of: 1.1, 2.1, 3.0\"}");
  CHECK(unknown.problems.front().line == 1);
  CHECK(load("_format_version: \"2.1\"\n").ok());
  CHECK(load("_format_version: \"1.1\"\n").ok());
}

TEST_CASE("declarative: unknown top-level keys and wrong section types") {
  LoadResult r = load("_format_version: \"3.0\"\nservice: []\nroutes: {}\n_transform: 1\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.errorBody()["fields"] == nlohmann::json({{"service", "unknown field"},
                                                   {"routes", "expected an array"},
                                                   {"_transform", "expected a boolean"}}));
}

TEST_CASE("declarative: 1.1 and 2.1 route paths migrate to 3.0 regex paths") {
  CHECK(migrateRoutePath("/status/\\d+") == "~/status/\\d+");
  CHECK(migrateRoutePath("/plain/path-1_~.x") == "/plain/path-1_~.x");
  CHECK(migrateRoutePath("/a/%7euser") == "/a/~user");
  CHECK(migrateRoutePath("/re$/%2e%2F") == "~/re$/\\.%2F");
  const char* body = R"(
services:
- name: s
  host: h
  routes:
  - name: a
    paths: ['/status/\d+', /plain]
routes:
- name: b
  service: s
  paths: ['/code/\d+']
)";
  LoadResult old = load(std::string("_format_version: \"1.1\"") + body);
  INFO(old.describe("t.yml"));
  REQUIRE(old.ok());
  for (const auto& route : old.snapshot.routes()) {
    if (route.name() == "a") {
      CHECK(route.paths(0) == "~/status/\\d+");
      CHECK(route.paths(1) == "/plain");
    } else {
      CHECK(route.paths(0) == "~/code/\\d+");
    }
  }
  LoadResult current = load(std::string("_format_version: \"3.0\"") + body);
  REQUIRE(current.ok());  // 3.0: taken as written (prefix paths with a backslash)
  for (const auto& route : current.snapshot.routes()) {
    CHECK(route.paths(0).front() == '/');
  }
}

TEST_CASE("declarative: nested plugins under services, routes and consumers get their parent") {
  LoadResult r = load(R"(_format_version: "3.0"
consumers:
- username: c
  plugins:
  - name: rate-limiting
    config: {minute: 5}
  keyauth_credentials:
  - key: secret-key
services:
- name: s
  host: h
  routes:
  - name: r
    paths: [/]
    plugins:
    - name: cors
)");
  INFO(r.describe("t.yml"));
  REQUIRE(r.ok());
  REQUIRE(r.snapshot.plugins_size() == 2);
  for (const auto& p : r.snapshot.plugins()) {
    if (p.name() == "cors") {
      CHECK(p.route().id() == r.snapshot.routes(0).id());
      CHECK_FALSE(p.has_service());
    } else {
      CHECK(p.consumer().id() == r.snapshot.consumers(0).id());
    }
  }
  REQUIRE(r.snapshot.keyauth_credentials_size() == 1);
  CHECK(r.snapshot.keyauth_credentials(0).consumer().id() == r.snapshot.consumers(0).id());
  CHECK(r.snapshot.keyauth_credentials(0).id() == entityUuid("keyauth_credentials", "secret-key"));
}

TEST_CASE("declarative: a nested entity must not set a foreign key") {
  LoadResult r = load(R"(_format_version: "3.0"
consumers:
- username: c
services:
- name: s
  host: h
  plugins:
  - name: cors
    consumer: c
)");
  REQUIRE_FALSE(r.ok());
  CHECK(firstMessage(r) == "value must be null");
  CHECK(r.problems.front().line == 9);
  CHECK(r.errorBody()["fields"] ==
        nlohmann::json::parse(R"J({"services":[{"plugins":[{"consumer":"value must be null"}]}]})J"));
}

TEST_CASE("declarative: references by endpoint key, by id, and decK's {name: ...}") {
  LoadResult r = load(R"(_format_version: "3.0"
services:
- name: s
  id: 5f4c3e2d-1b0a-4c9d-8e7f-6a5b4c3d2e1f
  host: h
routes:
- name: by-name
  service: s
  paths: [/a]
- name: by-id
  service: 5f4c3e2d-1b0a-4c9d-8e7f-6a5b4c3d2e1f
  paths: [/b]
- name: by-record
  service: {name: s}
  paths: [/c]
plugins:
- name: cors
  route: by-name
)");
  INFO(r.describe("t.yml"));
  REQUIRE(r.ok());
  for (const auto& route : r.snapshot.routes()) {
    CHECK(route.service_id() == "5f4c3e2d-1b0a-4c9d-8e7f-6a5b4c3d2e1f");
  }
}

TEST_CASE("declarative: a dangling reference is Kong's invalid reference, keyed by name") {
  LoadResult r = load(R"(_format_version: "3.0"
routes:
- name: r
  service: nope
  paths: [/]
)");
  REQUIRE_FALSE(r.ok());
  CHECK(firstMessage(r) == "invalid reference 'service: nope' (no such entry in 'services')");
  CHECK(r.problems.front().line == 4);
  CHECK(r.errorBody()["fields"] == nlohmann::json::parse(
      R"J({"routes":{"r":["invalid reference 'service: nope' (no such entry in 'services')"]}})J"));
}

TEST_CASE("declarative: uniqueness violations as Kong words them") {
  LoadResult names = load(R"(_format_version: "3.0"
services:
- name: foo
  host: a
- name: foo
  host: b
)");
  REQUIRE_FALSE(names.ok());
  CHECK(names.errorBody()["fields"] == nlohmann::json::parse(
      R"J({"services":[null,"uniqueness violation: 'services' entity with name set to 'foo' already declared"]})J"));
  CHECK(names.errorBody()["message"] ==
        "declarative config is invalid: {services={[2]=\"uniqueness violation: 'services' entity "
        "with name set to 'foo' already declared\"}}");
  CHECK(names.problems.front().line == 5);
  LoadResult custom = load(R"(_format_version: "1.1"
consumers:
- username: foo
  custom_id: conflict
- username: bar
  custom_id: conflict
)");
  REQUIRE_FALSE(custom.ok());
  CHECK(custom.errorBody()["fields"] == nlohmann::json::parse(
      R"J({"consumers":{"bar":"uniqueness violation: 'consumers' entity with custom_id set to 'conflict' already declared"}})J"));
  LoadResult ids = load(R"(_format_version: "3.0"
upstreams:
- name: u
  targets:
  - {id: 48322e4a-b3b0-591b-8ed6-fd95a6d75019, target: "10.244.0.12:80"}
  - {id: 48322e4a-b3b0-591b-8ed6-fd95a6d75019, target: "10.244.0.13:80"}
)");
  REQUIRE_FALSE(ids.ok());
  CHECK(ids.errorBody()["fields"] == nlohmann::json::parse(
      R"J({"upstreams":[{"targets":[null,"uniqueness violation: 'targets' entity with primary key set to '48322e4a-b3b0-591b-8ed6-fd95a6d75019' already declared"]}]})J"));
}

TEST_CASE("declarative: schema errors mirror the file, with flattened_errors and lines") {
  LoadResult r = load(R"(_format_version: "3.0"
services:
- name: s
  host: h
  tags: [team-a]
  routes:
  - name: ok
    paths: [/]
  - name: bad
    paths: [/ok, 42]
    bogus: 1
)");
  REQUIRE_FALSE(r.ok());
  const nlohmann::json body = r.errorBody();
  INFO(body.dump(2));
  CHECK(body["fields"]["services"][0]["routes"][0].is_null());
  CHECK(body["fields"]["services"][0]["routes"][1]["bogus"] == "unknown field");
  CHECK(body["fields"]["services"][0]["routes"][1]["paths"].is_array());
  REQUIRE(body["flattened_errors"].size() == 1);
  const auto& e = body["flattened_errors"][0];
  CHECK(e["entity_type"] == "route");
  CHECK(e["entity_name"] == "bad");
  CHECK(e["entity"]["name"] == "bad");
  bool saw_paths = false;
  for (const auto& err : e["errors"]) {
    CHECK(err["type"] == "field");
    if (err["field"] == "bogus") {
      CHECK(err["line"] == 11);
    }
    if (err["field"] == "paths.2") {
      saw_paths = true;
      CHECK(err["message"] == "expected a string");
      CHECK(err["line"] == 10);
    }
  }
  CHECK(saw_paths);
  CHECK(r.describe("kong.yml").find("kong.yml:11: services/0/routes/1 bogus: unknown field") !=
        std::string::npos);
}

TEST_CASE("declarative: _comment and _ignore anywhere are dropped") {
  LoadResult r = load(R"(_format_version: "3.0"
_comment: top
_ignore: [{anything: 1}]
services:
- name: s
  host: h
  _comment: a service
  _ignore: [1, 2]
  routes:
  - paths: [/]
    _comment: a route
)");
  INFO(r.describe("t.yml"));
  REQUIRE(r.ok());
  CHECK(r.snapshot.routes_size() == 1);
}

TEST_CASE("declarative: _transform hashes basic-auth passwords, false keeps them") {
  const char* body = R"(
consumers:
- username: u
  id: 5f4c3e2d-1b0a-4c9d-8e7f-6a5b4c3d2e1f
  basicauth_credentials:
  - username: login
    password: hunter2
)";
  LoadResult hashed = load(std::string("_format_version: \"3.0\"") + body);
  REQUIRE(hashed.ok());
  CHECK(hashed.snapshot.basicauth_credentials(0).password() ==
        config::basicAuthHash("hunter2", "5f4c3e2d-1b0a-4c9d-8e7f-6a5b4c3d2e1f"));
  LoadResult kept = load(std::string("_format_version: \"3.0\"\n_transform: false") + body);
  REQUIRE(kept.ok());
  CHECK(kept.snapshot.basicauth_credentials(0).password() == "hunter2");
}

TEST_CASE("declarative: decK's _info select_tags and defaults") {
  LoadResult r = load(R"(_format_version: "3.0"
_info:
  select_tags: [team-a]
  defaults:
    service: {read_timeout: 1234}
services:
- name: s
  host: h
  tags: [mine]
- name: t
  host: h
  read_timeout: 5
)");
  INFO(r.describe("t.yml"));
  REQUIRE(r.ok());
  for (const auto& s : r.snapshot.services()) {
    CHECK(std::find(s.tags().begin(), s.tags().end(), "team-a") != s.tags().end());
    CHECK(s.read_timeout() == (s.name() == "s" ? 1234 : 5));
  }
  CHECK_FALSE(load("_format_version: \"3.0\"\n_info: {select_tags: [1]}\n").ok());
  CHECK_FALSE(load("_format_version: \"3.0\"\n_info: {bogus: 1}\n").ok());
}

TEST_CASE("declarative: certificates' snis as names or as records") {
  const char* cert = R"(
certificates:
- cert: x
  key: y
  snis: [a.example.com, {name: b.example.com}]
)";
  LoadResult r = load(std::string("_format_version: \"3.0\"") + cert);
  REQUIRE_FALSE(r.ok());  // not a certificate: the schema's own checks run
  CHECK(r.problems.front().entity_type == "certificates");
}

TEST_CASE("declarative: bad input files") {
  SECTION("too large, refused before parsing") {
    LoadOptions small;
    small.max_bytes = 10;
    LoadResult r = loadDeclarative("_format_version: \"3.0\"\n", small);
    CHECK(firstMessage(r) == "the file is 23 bytes, more than the limit of 10");
    char path[] = "/tmp/declarative_test_XXXXXX";
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(ftruncate(fd, 100ll << 20) == 0);  // 100 MB, sparse
    close(fd);
    LoadResult big = loadDeclarativeFile(path);
    unlink(path);
    CHECK(firstMessage(big) == "the file is 104857600 bytes, more than the limit of 33554432");
  }
  SECTION("invalid UTF-8 names its line") {
    LoadResult r = load("_format_version: \"3.0\"\nservices:\n- name: \"\xff\xfe\"\n");
    CHECK(firstMessage(r) == "the file is not valid UTF-8");
    CHECK(r.problems.front().line == 3);
    CHECK(firstMessage(load("_format_version: \"3.0\"\n\xc0\xaf: 1\n")) ==
          "the file is not valid UTF-8");
    CHECK(firstMessage(load(std::string("a: 1\n\0b: 2\n", 11))) == "the file contains a NUL byte");
  }
  SECTION("YAML bomb") {
    std::string text = "_format_version: \"3.0\"\n_ignore:\n- &a0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int i = 1; i <= 9; ++i) {
      text += "- &a" + std::to_string(i) + " [";
      for (int k = 0; k < 10; ++k) {
        text += (k ? ", *a" : "*a") + std::to_string(i - 1);
      }
      text += "]\n";
    }
    LoadResult r = load(text);
    REQUIRE_FALSE(r.ok());
    CHECK(firstMessage(r).find("values (aliases included)") != std::string::npos);
  }
  SECTION("nesting depth") {
    std::string text = "_format_version: \"3.0\"\n_ignore: " + std::string(80, '[') +
                       std::string(80, ']') + "\n";
    CHECK(firstMessage(load(text)).find("nesting deeper than 64 levels") != std::string::npos);
  }
  SECTION("syntax error with its line") {
    LoadResult r = load("_format_version: \"3.0\"\nservices:\n- name: [x\n");
    REQUIRE_FALSE(r.ok());
    CHECK(firstMessage(r).rfind("failed parsing declarative configuration: line ", 0) == 0);
    CHECK(r.problems.front().line >= 3);
  }
  SECTION("not a map") {
    CHECK(firstMessage(load("- a\n- b\n")) ==
          "failed parsing declarative configuration: expected an object");
  }
  SECTION("a config value of the wrong type for a plugin's own check is an error on it") {
    // Truncating a file after "policy:" leaves an explicit null that rate-limiting's config
    // check reads as a string: it once escaped as an exception and stopped the process.
    LoadResult r = load(
        "_format_version: \"3.0\"\nplugins:\n- name: rate-limiting\n  config:\n"
        "    minute: 60\n    policy:\n");
    REQUIRE_FALSE(r.ok());
    CHECK(r.problems.front().field == "config");
    CHECK(firstMessage(r) == "invalid value: type must be string, but is null");
  }
  SECTION("entity that is not a record") {
    LoadResult r = load("_format_version: \"3.0\"\nservices: [x]\n");
    CHECK(firstMessage(r) == "expected a record");
  }
}

TEST_CASE("declarative fixtures: burst.yml (236 services, 286 routes)") {
  const std::string path = fixture("kong-spec-fixtures-burst.yml");
  if (!exists(path)) {
    WARN("skipped: " << path << " is absent");
    return;
  }
  LoadResult r = loadDeclarativeFile(path);
  INFO(r.describe(path));
  REQUIRE(r.ok());
  CHECK(r.format_version == "1.1");
  CHECK(r.snapshot.services_size() == 236);
  CHECK(r.snapshot.routes_size() == 286);
  CHECK(r.snapshot.upstreams_size() == 236);
  CHECK(r.snapshot.targets_size() == 237);
  // Loading twice gives the same snapshot, byte for byte.
  CHECK(loadDeclarativeFile(path).snapshot.SerializeAsString() == r.snapshot.SerializeAsString());
}

TEST_CASE("declarative fixtures: decK's dump with every core entity") {
  const std::string path = fixture("deck-dump-001-entities-with-tags.yaml");
  if (!exists(path)) {
    WARN("skipped: " << path << " is absent");
    return;
  }
  LoadResult r = loadDeclarativeFile(path);
  INFO(r.describe(path));
  REQUIRE(r.ok());
  CHECK(r.snapshot.certificates_size() >= 1);
  CHECK(r.snapshot.snis_size() >= 1);
  CHECK(r.snapshot.consumers_size() >= 1);
  CHECK(r.snapshot.acls_size() >= 1);
  CHECK(r.snapshot.hmacauth_credentials_size() >= 1);
  CHECK(r.snapshot.jwt_secrets_size() >= 1);
  CHECK(r.snapshot.keyauth_credentials_size() >= 1);
  CHECK(r.snapshot.targets_size() >= 1);
}

TEST_CASE("declarative fixtures: a 2.8 file migrates to what decK's 3.4 conversion expects") {
  const std::string old_path = fixture("deck-convert-28x-routes.yaml");
  const std::string new_path = fixture("deck-convert-34x-expected-routes.yaml");
  if (!exists(old_path) || !exists(new_path)) {
    WARN("skipped: fixtures absent");
    return;
  }
  LoadResult a = loadDeclarativeFile(old_path);
  LoadResult b = loadDeclarativeFile(new_path);
  INFO(a.describe(old_path) << b.describe(new_path));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(a.snapshot.routes_size() == b.snapshot.routes_size());
  for (int i = 0; i < a.snapshot.routes_size(); ++i) {
    CHECK(std::vector<std::string>(a.snapshot.routes(i).paths().begin(),
                                   a.snapshot.routes(i).paths().end()) ==
          std::vector<std::string>(b.snapshot.routes(i).paths().begin(),
                                   b.snapshot.routes(i).paths().end()));
  }
}

TEST_CASE("declarative fixtures: Supabase's file is refused for its Enterprise-only protocol") {
  const std::string path = fixture("supabase-docker-kong.yml");
  if (!exists(path)) {
    WARN("skipped: " << path << " is absent");
    return;
  }
  LoadResult r = loadDeclarativeFile(path);
  REQUIRE_FALSE(r.ok());
  INFO(r.describe(path));
  bool saw = false;
  for (const Problem& p : r.problems) {
    if (p.field == "protocol") {
      saw = true;
      CHECK(p.message == "expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp");
      CHECK(p.line > 0);
    }
  }
  CHECK(saw);
}

}  // namespace
}  // namespace portico::declarative
