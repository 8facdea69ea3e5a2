// POST /config and GET /config against a real PostgreSQL: Kong's burst.yml fixture replaces
// the config in one generation; invalid files answer Kong's code-14 body (`fields`, and
// `flattened_errors` only with ?flatten_errors=1) and change nothing; check_hash answers 304;
// GET's export posts back as a no-op; replace semantics (deletes, kept created_at, swapped
// names, the Admin API's stored form); per group; body forms and size limits; admin tokens.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/config/validate.h"
#include "common/declarative/declarative.h"
#include "common/sync/delta.h"
#include "control_plane/admin_api/admin_auth.h"
#include "control_plane/admin_api/http_server.h"
#include "control_plane/store/migrations.h"
#include "control_plane/store/pg_store_impl.h"
#include "tests/support/test_support.h"

namespace portico::cp {
namespace {

using nlohmann::json;

struct Fixture {
  testing::TestPostgres pg;
  std::unique_ptr<PgConfigStore> store;
  std::unique_ptr<AdminHttpServer> admin;

  explicit Fixture(AdminServerOptions options = {}) {
    REQUIRE(migrateUp(pg.dsn()).ok());
    store = std::move(PgConfigStore::open({pg.dsn(), 4}).value());
    options.listen_address = "127.0.0.1:0";
    admin = std::move(AdminHttpServer::start(*store, options).value());
  }
  ~Fixture() {
    admin->shutdown();
    store->stop();
  }
  testing::HttpResponse call(const std::string& method, const std::string& target,
                             const std::string& body = "",
                             const std::string& type = "application/json",
                             const std::string& token = "") {
    std::map<std::string, std::string> headers;
    if (!body.empty()) {
      headers["Content-Type"] = type;
    }
    if (!token.empty()) {
      headers["Kong-Admin-Token"] = token;
    }
    return testing::httpRequest("127.0.0.1", admin->port(), method, target, body, headers);
  }
  json callJson(const std::string& method, const std::string& target, const std::string& body,
                int expected, const std::string& type = "application/json") {
    auto r = call(method, target, body, type);
    INFO(method << " " << target << " -> " << r.status << " " << r.body.substr(0, 2000));
    REQUIRE(r.status == expected);
    return r.body.empty() ? json() : json::parse(r.body);
  }
  uint64_t generation(const std::string& group = "default") {
    return store->currentGeneration(group).value();
  }
  // Every entity of `path` (all pages).
  std::vector<json> list(const std::string& path) {
    std::vector<json> out;
    std::string next = path + (path.find('?') == std::string::npos ? "?" : "&") + "size=1000";
    while (!next.empty()) {
      json page = callJson("GET", next, "", 200);
      for (auto& e : page["data"]) {
        out.push_back(e);
      }
      next = page["next"].is_string() ? page["next"].get<std::string>() : "";
    }
    return out;
  }
  std::string sql(const std::string& q) {
    std::string out = pg.psql(q);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
      out.pop_back();
    }
    return out;
  }
};

std::string fixturePath(const std::string& name) {
  return testing::sourceDir() + "/../shared/fixtures/declarative/" + name;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json withoutTimestamps(json e) {
  e.erase("created_at");
  e.erase("updated_at");
  return e;
}

constexpr char kSmall[] = R"(_format_version: "3.0"
services:
- name: svc-a
  id: 0b6f5ac1-7e2a-4a5c-9a61-000000000001
  url: http://a.example.test:8080/a
  routes:
  - name: route-a
    paths: [/a]
    plugins:
    - name: key-auth
- name: svc-b
  url: http://b.example.test
  routes:
  - name: route-b
    hosts: [b.example.test]
consumers:
- username: bob
  keyauth_credentials:
  - key: bob-secret
  acls:
  - group: gold
upstreams:
- name: up-1
  targets:
  - target: 10.0.0.1:80
    weight: 50
)";

TEST_CASE("config: burst.yml replaces the config in one generation; GET round trip") {
  const std::string path = fixturePath("kong-spec-fixtures-burst.yml");
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    WARN("skipped: " << path << " is absent (../shared/fixtures)");
    return;
  }
  const std::string file = readFile(path);
  const declarative::LoadResult expected = declarative::loadDeclarative(file);
  REQUIRE(expected.ok());
  Fixture f;
  // Something the file does not hold, made through the Admin API: the replace removes it.
  f.callJson("POST", "/services", R"({"name":"old","host":"old.test"})", 201);
  const uint64_t g0 = f.generation();

  // The raw file, as `curl --data-binary @burst.yml -H 'Content-Type: text/yaml'` sends it.
  json answer = f.callJson("POST", "/config", file, 201, "text/yaml");
  CHECK(f.generation() == g0 + 1);
  CHECK(answer["services"].size() == static_cast<size_t>(expected.snapshot.services_size()));
  CHECK(answer["routes"].size() == static_cast<size_t>(expected.snapshot.routes_size()));
  CHECK(f.list("/services").size() == static_cast<size_t>(expected.snapshot.services_size()));
  CHECK(f.list("/routes").size() == static_cast<size_t>(expected.snapshot.routes_size()));
  CHECK(f.list("/plugins").size() == static_cast<size_t>(expected.snapshot.plugins_size()));
  CHECK(f.callJson("GET", "/services/old", "", 404, "")["message"] == "Not found");
  // One generation: one change_log row per entity written or deleted, all of it.
  size_t entities = 0;
  const auto* refl = expected.snapshot.GetReflection();
  for (int i = 0; i < expected.snapshot.GetDescriptor()->field_count(); ++i) {
    const auto* field = expected.snapshot.GetDescriptor()->field(i);
    if (field->is_repeated()) {
      entities += static_cast<size_t>(refl->FieldSize(expected.snapshot, field));
    }
  }
  CHECK(f.sql("SELECT count(*) FROM change_log WHERE generation = " +
              std::to_string(g0 + 1)) == std::to_string(entities + 1));
  CHECK(f.sql("SELECT count(*) FROM change_log WHERE generation = " + std::to_string(g0 + 1) +
              " AND op = 'delete'") == "1");
  // What the DPs get passes their own check. The first read after the replace is the
  // snapshot the replace kept in memory; it hashes exactly as a read from the database does
  // (a replica reading the same generation offers the same config_hash).
  auto snap = f.store->loadSnapshot("default");
  REQUIRE(snap.ok());
  CHECK(f.store->keptSnapshotReads() == 1);
  CHECK(config::validateSnapshot(*snap).empty());
  CHECK(snap->routes_size() == expected.snapshot.routes_size());
  auto reread = f.store->loadSnapshot("default");
  REQUIRE(reread.ok());
  CHECK(f.store->keptSnapshotReads() == 1);  // taken once; this one read the database
  CHECK(reread->generation() == snap->generation());
  CHECK(reread->epoch() == snap->epoch());
  sync::canonicalize(&*snap);
  sync::canonicalize(&*reread);
  CHECK(sync::hashSnapshot(*snap).value() == sync::hashSnapshot(*reread).value());
  CHECK(snap->SerializeAsString() == reread->SerializeAsString());

  // The same file again: nothing to change, no generation. With check_hash: 304.
  f.callJson("POST", "/config", file, 201, "text/yaml");
  CHECK(f.generation() == g0 + 1);
  auto r = f.call("POST", "/config?check_hash=1", file, "text/yaml");
  CHECK(r.status == 304);
  CHECK(r.body.empty());
  CHECK(f.generation() == g0 + 1);

  // GET /config: Kong's {"config": "<file>"}, which posts back as a no-op.
  json exported = f.callJson("GET", "/config", "", 200, "");
  REQUIRE(exported["config"].is_string());
  json doc = json::parse(exported["config"].get<std::string>());
  CHECK(doc["_format_version"] == "3.0");
  CHECK(doc["_transform"] == false);
  CHECK(doc["services"].size() == static_cast<size_t>(expected.snapshot.services_size()));
  const std::string before = f.sql("SELECT md5(string_agg(entity::text, ',' ORDER BY id)) "
                                   "FROM services");
  f.callJson("POST", "/config", exported.dump(), 201);
  CHECK(f.generation() == g0 + 1);
  CHECK(f.call("POST", "/config?check_hash=1", exported.dump()).status == 304);
  CHECK(f.sql("SELECT md5(string_agg(entity::text, ',' ORDER BY id)) FROM services") == before);
}

TEST_CASE("config: an invalid file answers code 14 and changes nothing") {
  Fixture f;
  f.callJson("POST", "/config", kSmall, 201, "application/x-yaml");
  const uint64_t g = f.generation();
  const std::string before = f.sql("SELECT count(*) FROM services") + "/" +
                             f.sql("SELECT count(*) FROM routes");
  CHECK(before == "2/2");

  const std::string bad = R"(_format_version: "3.0"
services:
- name: svc-c
  url: http://c.example.test
  colour: blue
routes:
- name: r1
  service: missing
  paths: [/x]
)";
  json body = f.callJson("POST", "/config", bad, 400, "text/yaml");
  CHECK(body["code"] == 14);
  CHECK(body["name"] == "invalid declarative configuration");
  CHECK(body["message"].get<std::string>().rfind("declarative config is invalid: ", 0) == 0);
  // Kong reports schema errors before references: the dangling one comes once they are fixed.
  CHECK(body["fields"] == json::parse(R"({"services":[{"colour":"unknown field"}]})"));
  CHECK_FALSE(body.contains("flattened_errors"));

  json flat = f.callJson("POST", "/config?flatten_errors=1", bad, 400, "text/yaml");
  REQUIRE(flat["flattened_errors"].is_array());
  REQUIRE(flat["flattened_errors"].size() == 1);
  CHECK(flat["flattened_errors"][0]["entity_type"] == "service");
  CHECK(flat["flattened_errors"][0]["entity_name"] == "svc-c");
  CHECK(flat["fields"] == body["fields"]);
  // The option in a JSON body, as Kong merges body and query parameters.
  json flat2 = f.callJson("POST", "/config",
                          json{{"config", bad}, {"flatten_errors", true}}.dump(), 400);
  CHECK(flat2["flattened_errors"].size() == 1);
  std::string dangling = bad;
  dangling.erase(dangling.find("  colour: blue\n"), 14);
  json ref = f.callJson("POST", "/config?flatten_errors=yes", dangling, 400, "text/yaml");
  CHECK(ref["fields"]["routes"]["r1"].is_array());  // keyed by name, as Kong does
  CHECK(ref["flattened_errors"].size() == 1);
  // 'off' is not truthy for Kong.
  CHECK_FALSE(
      f.callJson("POST", "/config?flatten_errors=off", bad, 400, "text/yaml")
          .contains("flattened_errors"));

  // Syntax, unknown version, empty.
  json syntax = f.callJson("POST", "/config", "services: [\n  - name: x\n", 400, "text/yaml");
  CHECK(syntax["code"] == 14);
  json version = f.callJson("POST", "/config", "_format_version: \"9.9\"\n", 400, "text/yaml");
  CHECK(version["code"] == 14);
  CHECK(f.callJson("POST", "/config", "", 400)["message"] ==
        "expected a declarative configuration");
  CHECK(f.callJson("POST", "/config", R"({"config":""})", 400)["message"] ==
        "expected a declarative configuration");

  CHECK(f.generation() == g);
  CHECK(f.sql("SELECT count(*) FROM services") + "/" + f.sql("SELECT count(*) FROM routes") ==
        before);
  // The replace began deleting svc-a's and svc-b's rows as soon as the bad file's ids were
  // known (replaceConfigEarly); the failed validation rolled that back, logs included.
  CHECK(f.sql("SELECT count(*) FROM change_log WHERE generation > " + std::to_string(g)) == "0");
  CHECK(f.call("PUT", "/config", "{}").status == 405);
}

TEST_CASE("config: replace keeps what stays, removes the rest, swaps names") {
  Fixture f;
  json first = f.callJson("POST", "/config", kSmall, 201, "text/yaml");
  const std::string a_id = "0b6f5ac1-7e2a-4a5c-9a61-000000000001";
  json svc_a = f.callJson("GET", "/services/" + a_id, "", 200);
  CHECK(svc_a["host"] == "a.example.test");
  CHECK(svc_a["port"] == 8080);
  json key = f.list("/key-auths").at(0);
  CHECK(key["key"] == "bob-secret");
  // An entity added through the Admin API in between.
  f.callJson("POST", "/consumers", R"({"username":"carol"})", 201);
  const uint64_t g = f.generation();

  // svc-a keeps its id and gets svc-b's name, svc-b (same derived id: it keeps no name) goes,
  // a new service takes "svc-a"; bob loses his ACL; carol is not in the file.
  const std::string next = R"(_format_version: "3.0"
services:
- name: svc-b
  id: 0b6f5ac1-7e2a-4a5c-9a61-000000000001
  url: http://a.example.test:8080/a
  routes:
  - name: route-a
    paths: [/a]
    plugins:
    - name: key-auth
- name: svc-a
  url: http://new.example.test
consumers:
- username: bob
  keyauth_credentials:
  - key: bob-secret
upstreams:
- name: up-1
  targets:
  - target: 10.0.0.1:80
    weight: 50
)";
  f.callJson("POST", "/config", next, 201, "text/yaml");
  CHECK(f.generation() == g + 1);
  json a = f.callJson("GET", "/services/" + a_id, "", 200);
  CHECK(a["name"] == "svc-b");
  CHECK(a["created_at"] == svc_a["created_at"]);  // the entity stayed
  CHECK(f.callJson("GET", "/services/svc-a", "", 200)["host"] == "new.example.test");
  CHECK(f.list("/services").size() == 2);
  CHECK(f.list("/routes").size() == 1);
  CHECK(f.list("/consumers").size() == 1);
  CHECK(f.list("/acls").empty());
  // Unchanged entities are not rewritten: the key-auth credential, the plugin, the target.
  CHECK(f.list("/key-auths").at(0) == key);
  const std::string log = f.sql(
      "SELECT string_agg(entity_type || ':' || op, ',' ORDER BY entity_type, op) FROM "
      "change_log WHERE generation = " + std::to_string(g + 1));
  // route-b, svc-b's old self, bob's acl and carol deleted; the kept service (renamed) and
  // the new svc-a written; route-a (its id derived from its own name), its plugin, bob, his
  // key and the upstream left alone.
  CHECK(log == "acls:delete,consumers:delete,routes:delete,services:delete,services:upsert,"
               "services:upsert");

  // The stored form is the Admin API's own: the same entities written through it compare
  // equal (timestamps aside).
  f.callJson("POST", "/control-planes", R"({"name":"mirror"})", 201);
  for (const char* type : {"services", "routes", "consumers", "plugins", "upstreams"}) {
    for (json e : f.list(std::string("/") + type)) {
      json input = withoutTimestamps(e);
      const std::string id = input["id"];
      f.callJson("PUT", std::string("/control-planes/mirror/") + type + "/" + id, input.dump(),
                 200);
      json mirrored =
          f.callJson("GET", std::string("/control-planes/mirror/") + type + "/" + id, "", 200);
      INFO(type << " " << id);
      CHECK(withoutTimestamps(mirrored) == withoutTimestamps(e));
    }
  }
  // ...and a POST /config of the mirror's export into the mirror changes nothing.
  const uint64_t mg = f.generation("mirror");
  json exported = f.callJson("GET", "/control-planes/mirror/config", "", 200);
  f.callJson("POST", "/control-planes/mirror/config", exported.dump(), 201);
  CHECK(f.generation("mirror") == mg);
}

TEST_CASE("config: per group, body forms, size limits") {
  AdminServerOptions options;
  options.max_config_body_bytes = 2 << 20;
  Fixture f(options);
  f.callJson("POST", "/control-planes", R"({"name":"eu"})", 201);
  const uint64_t g_default = f.generation();
  // Kong's documented form: multipart with the file in `config`.
  const std::string boundary = "----portico-test-boundary";
  const std::string multipart = "--" + boundary +
                                "\r\nContent-Disposition: form-data; name=\"config\"; "
                                "filename=\"kong.yml\"\r\nContent-Type: application/x-yaml\r\n\r\n" +
                                kSmall + "\r\n--" + boundary + "--\r\n";
  f.callJson("POST", "/control-planes/eu/config", multipart, 201,
             "multipart/form-data; boundary=" + boundary);
  CHECK(f.generation() == g_default);  // the default group is untouched
  CHECK(f.list("/control-planes/eu/services").size() == 2);
  CHECK(f.list("/services").empty());
  CHECK(f.call("GET", "/control-planes/nowhere/config").status == 404);

  // A form body, the file in `config`, check_hash there too.
  std::string form = "check_hash=1&config=";
  for (char c : std::string(kSmall)) {
    char buf[4];
    std::snprintf(buf, sizeof(buf), "%%%02X", static_cast<unsigned char>(c));
    form += std::isalnum(static_cast<unsigned char>(c)) ? std::string(1, c) : std::string(buf);
  }
  CHECK(f.call("POST", "/control-planes/eu/config", form, "application/x-www-form-urlencoded")
            .status == 304);
  // The file itself as a JSON object.
  json as_json = f.callJson("GET", "/control-planes/eu/config", "", 200);
  const std::string doc = as_json["config"];
  CHECK(f.call("POST", "/config?check_hash=1", doc).status == 201);  // default differed
  CHECK(f.call("POST", "/config?check_hash=1", doc).status == 304);
  CHECK(f.list("/services").size() == 2);

  // The Admin listener's body limit (1 MiB) does not apply to /config, its own does. The
  // 1.5 MB are mostly a `_comment`: 34,000 entities took over the client's 10 s under ASan.
  std::string big = "_format_version: \"3.0\"\n_comment: \"" + std::string(1500000, 'x') +
                    "\"\nservices:\n";
  for (int i = 0; i < 50; ++i) {
    big += "- name: s" + std::to_string(i) + "\n  host: s" + std::to_string(i) +
           ".example.test\n  routes:\n  - name: r" + std::to_string(i) + "\n    paths: [/r" +
           std::to_string(i) + "]\n";
  }
  CHECK(f.call("POST", "/config", big, "text/yaml").status == 201);
  CHECK(f.call("POST", "/services", std::string(1500000, ' ') + "{}").status == 413);
  CHECK(f.call("POST", "/config", big + big, "text/yaml").status == 413);
}

TEST_CASE("config: a read-only token may GET but not POST") {
  AdminServerOptions options;
  options.require_auth = true;
  Fixture f(options);
  const NewAdminToken admin = makeAdminToken("ops", kRoleAdmin);
  const NewAdminToken reader = makeAdminToken("viewer", kRoleReadOnly);
  REQUIRE(f.store->createAdmin(admin.record).ok());
  REQUIRE(f.store->createAdmin(reader.record).ok());
  const uint64_t g = f.generation();
  CHECK(f.call("POST", "/config", kSmall, "text/yaml").status == 401);
  auto denied = f.call("POST", "/config", kSmall, "text/yaml", reader.token);
  CHECK(denied.status == 403);
  CHECK(json::parse(denied.body)["message"] ==
        "viewer, you do not have permissions to create this resource");
  CHECK(f.generation() == g);
  CHECK(f.call("POST", "/config", kSmall, "text/yaml", admin.token).status == 201);
  CHECK(f.generation() == g + 1);
  auto got = f.call("GET", "/config", "", "", reader.token);
  CHECK(got.status == 200);
  CHECK(json::parse(json::parse(got.body)["config"].get<std::string>())["services"].size() == 2);
  CHECK(f.call("GET", "/config").status == 401);
}

}  // namespace
}  // namespace portico::cp
