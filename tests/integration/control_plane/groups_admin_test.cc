// Control-plane groups (Konnect "control planes") against a real PostgreSQL: CRUD with
// Konnect's shapes, every Kong endpoint under /control-planes/{id or name}/..., names unique
// per group only, per-group generations, and isolation on the sync path (a real SyncServer and
// one real SyncClient per group: a write reaches only its group's DPs).
#include <catch2/catch.hpp>

#include <chrono>
#include <mutex>

#include <nlohmann/json.hpp>

#include "absl/synchronization/mutex.h"
#include "control_plane/admin_api/http_server.h"
#include "control_plane/store/migrations.h"
#include "control_plane/store/pg_changes.h"
#include "control_plane/store/pg_store_impl.h"
#include "control_plane/sync/sync_server.h"
#include "data_plane/sync_client/sync_client.h"
#include "tests/support/test_support.h"

namespace portico::cp {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

struct Fixture {
  testing::TestPostgres pg;
  std::unique_ptr<PgConfigStore> store;
  std::unique_ptr<AdminHttpServer> admin;

  Fixture() {
    REQUIRE(migrateUp(pg.dsn()).ok());
    auto s = PgConfigStore::open({pg.dsn(), 4});
    REQUIRE(s.ok());
    store = std::move(*s);
    AdminServerOptions options;
    options.listen_address = "127.0.0.1:0";
    auto a = AdminHttpServer::start(*store, options);
    REQUIRE(a.ok());
    admin = std::move(*a);
  }
  ~Fixture() {
    admin->shutdown();
    store->stop();
  }
  testing::HttpResponse call(const std::string& method, const std::string& target,
                             const std::string& body = "") {
    std::map<std::string, std::string> headers;
    if (!body.empty()) {
      headers["Content-Type"] = "application/json";
    }
    return testing::httpRequest("127.0.0.1", admin->port(), method, target, body, headers);
  }
  json callJson(const std::string& method, const std::string& target, const std::string& body,
                int expected) {
    auto r = call(method, target, body);
    INFO(method << " " << target << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == expected);
    return r.body.empty() ? json() : json::parse(r.body);
  }
  uint64_t generation(const std::string& group) {
    auto g = store->currentGeneration(group);
    REQUIRE(g.ok());
    return *g;
  }
};

TEST_CASE("groups: Konnect-shaped CRUD, unique names, default protected") {
  Fixture f;
  json list = f.callJson("GET", "/control-planes", "", 200);
  REQUIRE(list["data"].size() == 1);
  CHECK(list["data"][0]["name"] == "default");
  CHECK(list["meta"]["page"]["total"] == 1);

  json cp = f.callJson("POST", "/control-planes",
                       R"({"name":"eu-west","description":"EU","labels":{"env":"prod"}})", 201);
  CHECK(cp["name"] == "eu-west");
  CHECK(cp["description"] == "EU");
  CHECK(cp["labels"] == json{{"env", "prod"}});
  CHECK(cp["id"].get<std::string>().size() == 36);
  CHECK(cp["created_at"].get<std::string>().ends_with("Z"));
  CHECK(cp.contains("updated_at"));
  const std::string id = cp["id"];

  // Name unique (409, Konnect body); invalid names and labels are 400 with invalid_parameters.
  json dup = f.callJson("POST", "/control-planes", R"({"name":"eu-west"})", 409);
  CHECK(dup["status"] == 409);
  CHECK(dup["title"] == "Conflict");
  json bad = f.callJson("POST", "/control-planes", R"({"description":"x"})", 400);
  CHECK(bad["invalid_parameters"][0]["field"] == "name");
  f.callJson("POST", "/control-planes", R"({"name":"a/b"})", 400);
  f.callJson("POST", "/control-planes", "{\"name\":\"" + id + "\"}", 400);
  f.callJson("POST", "/control-planes", R"({"name":"x","labels":{"k":1}})", 400);
  f.callJson("POST", "/control-planes", "{nope", 400);

  // By id or by name.
  CHECK(f.callJson("GET", "/control-planes/" + id, "", 200)["name"] == "eu-west");
  CHECK(f.callJson("GET", "/control-planes/eu-west", "", 200)["id"] == id);
  json nf = f.callJson("GET", "/control-planes/nope", "", 404);
  CHECK(nf["title"] == "Not Found");

  json patched = f.callJson("PATCH", "/control-planes/eu-west",
                            R"({"description":null,"labels":{"env":"dev","team":"a"}})", 200);
  CHECK(patched["description"].is_null());
  CHECK(patched["labels"] == json{{"env", "dev"}, {"team", "a"}});
  CHECK(patched["id"] == id);
  f.callJson("PATCH", "/control-planes/eu-west", R"({"name":"other"})", 400);
  f.callJson("PATCH", "/control-planes/eu-west", R"({"name":"eu-west"})", 200);
  f.callJson("PUT", "/control-planes/eu-west", "{}", 405);

  // Pagination (Konnect page[size]/page[number]).
  f.callJson("POST", "/control-planes", R"({"name":"zz"})", 201);
  json p2 = f.callJson("GET", "/control-planes?page[size]=2&page[number]=2", "", 200);
  CHECK(p2["data"].size() == 1);
  CHECK(p2["data"][0]["name"] == "zz");
  CHECK(p2["meta"]["page"]["total"] == 3);
  f.callJson("GET", "/control-planes?page[size]=0", "", 400);

  json def = f.callJson("GET", "/control-planes/default", "", 200);
  json refused = f.callJson("DELETE", "/control-planes/default", "", 400);
  CHECK(refused["detail"] == "the default control plane cannot be deleted");
  f.callJson("DELETE", "/control-planes/" + def["id"].get<std::string>(), "", 400);
  f.callJson("DELETE", "/control-planes/zz", "", 204);
  f.callJson("DELETE", "/control-planes/zz", "", 204);  // idempotent, like Kong's DELETE
  f.callJson("GET", "/control-planes/zz", "", 404);
}

TEST_CASE("groups: every Kong endpoint under /control-planes/{id}, names unique per group") {
  Fixture f;
  const std::string a = f.callJson("POST", "/control-planes", R"({"name":"a"})", 201)["id"];
  const std::string base = "/control-planes/" + a;

  // The same names in default and in group a.
  for (const std::string& root : {std::string(""), base}) {
    f.callJson("POST", root + "/services", R"({"name":"svc","host":"h.test"})", 201);
    f.callJson("POST", root + "/services/svc/routes", R"({"name":"r","paths":["/x"]})", 201);
    f.callJson("POST", root + "/consumers", R"({"username":"bob"})", 201);
    f.callJson("POST", root + "/consumers/bob/key-auth", R"({"key":"k1"})", 201);
    f.callJson("POST", root + "/plugins", R"({"name":"key-auth","route":{"name":"r"}})", 201);
    f.callJson("POST", root + "/upstreams", R"({"name":"up"})", 201);
    f.callJson("POST", root + "/upstreams/up/targets", R"({"target":"10.0.0.1:80"})", 201);
    // Unique within the group still holds.
    json dup = f.callJson("POST", root + "/services", R"({"name":"svc","host":"h.test"})", 409);
    CHECK(dup["name"] == "unique constraint violation");
  }
  // Distinct entities, each group sees only its own.
  json d = f.callJson("GET", "/services/svc", "", 200);
  json g = f.callJson("GET", base + "/services/svc", "", 200);
  CHECK(d["id"] != g["id"]);
  CHECK(f.callJson("GET", base + "/services", "", 200)["data"].size() == 1);
  CHECK(f.callJson("GET", "/control-planes/a/routes/r/service", "", 200)["id"] == g["id"]);
  CHECK(f.callJson("GET", base + "/consumers/bob/key-auth", "", 200)["data"].size() == 1);
  // An id of one group is not found in the other.
  f.callJson("GET", base + "/services/" + d["id"].get<std::string>(), "", 404);
  f.callJson("GET", "/control-planes/nope/services", "", 404);
  // Other endpoints work there too: tags, schemas, status, node info.
  f.callJson("PATCH", base + "/services/svc", R"({"tags":["t1"]})", 200);
  CHECK(f.callJson("GET", base + "/tags/t1", "", 200)["data"].size() == 1);
  CHECK(f.callJson("GET", "/tags/t1", "", 200)["data"].empty());
  f.callJson("GET", base + "/schemas/services", "", 200);
  CHECK(f.callJson("GET", base + "/status", "", 200)["database"]["reachable"] == true);
  f.callJson("GET", base + "/", "", 200);

  // Pagination links keep the group prefix.
  for (int i = 0; i < 3; ++i) {
    f.callJson("POST", base + "/services", "{\"name\":\"p" + std::to_string(i) +
                                                "\",\"host\":\"h.test\"}", 201);
  }
  json page = f.callJson("GET", base + "/services?size=2", "", 200);
  CHECK(page["next"].get<std::string>().rfind(base + "/services?offset=", 0) == 0);
  json nested = f.callJson("GET", base + "/upstreams/up/targets?size=1", "", 200);
  CHECK(nested["next"].is_null());

  // A write in one group bumps only its generation.
  const uint64_t gd = f.generation("default"), ga = f.generation("a");
  f.callJson("POST", base + "/services", R"({"name":"only-a","host":"h.test"})", 201);
  CHECK(f.generation("a") == ga + 1);
  CHECK(f.generation("default") == gd);
  f.callJson("DELETE", "/services/svc/routes/r", "", 204);
  CHECK(f.generation("default") == gd + 1);
  CHECK(f.generation("a") == ga + 1);

  // Deleting a group removes all of its entities (and change log) in one transaction; the
  // default group keeps its own.
  f.callJson("DELETE", base, "", 204);
  CHECK(f.pg.psql("SELECT count(*) FROM services WHERE group_name = 'a'") == "0\n");
  CHECK(f.pg.psql("SELECT count(*) FROM plugins WHERE group_name = 'a'") == "0\n");
  CHECK(f.pg.psql("SELECT count(*) FROM targets WHERE group_name = 'a'") == "0\n");
  CHECK(f.pg.psql("SELECT count(*) FROM change_log WHERE group_name = 'a'") == "0\n");
  f.callJson("GET", base + "/services/svc", "", 404);
  f.callJson("GET", "/services/svc", "", 200);
  // The name can be reused: a new, empty group.
  const std::string a2 = f.callJson("POST", "/control-planes", R"({"name":"a"})", 201)["id"];
  CHECK(a2 != a);
  CHECK(f.callJson("GET", "/control-planes/a/services", "", 200)["data"].empty());
}

TEST_CASE("groups: a write reaches only its own group's data planes") {
  Fixture f;
  f.callJson("POST", "/control-planes", R"({"name":"blue"})", 201);
  PgChangeLogStore changes(*f.store, f.pg.dsn());
  SyncServerOptions so;
  so.listen_address = "127.0.0.1:0";
  so.insecure = true;
  so.heartbeat_interval_ms = 200;
  auto server = SyncServer::start(changes, so);
  REQUIRE(server.ok());
  f.store->startListening();

  struct Dp {
    absl::Mutex mu;
    std::vector<uint64_t> generations;
    std::vector<std::string> service_names;
    std::unique_ptr<dp::SyncClient> client;
  };
  auto makeDp = [&](Dp& d, const std::string& group) {
    dp::SyncClient::Options co;
    co.cp_address = "127.0.0.1:" + std::to_string((*server)->port());
    co.insecure = true;
    co.version = "0.1.0";
    co.group = group;
    d.client = std::make_unique<dp::SyncClient>(
        co, [&d](const config::v1::Snapshot& s, const std::string&, config::FieldErrors*) {
          absl::MutexLock lock(&d.mu);
          d.generations.push_back(s.generation());
          d.service_names.clear();
          for (const auto& svc : s.services()) {
            d.service_names.push_back(svc.name());
          }
          return absl::OkStatus();
        });
    REQUIRE(d.client->start().ok());
  };
  Dp def, blue;
  makeDp(def, "default");
  makeDp(blue, "blue");
  REQUIRE(testing::waitFor([&] { return def.client->state().connected; }, 10s));
  REQUIRE(testing::waitFor([&] { return blue.client->state().connected; }, 10s));
  REQUIRE(testing::waitFor([&] { return def.client->state().applies >= 1; }, 10s));
  REQUIRE(testing::waitFor([&] { return blue.client->state().applies >= 1; }, 10s));
  const uint64_t def_applies = def.client->state().applies;

  f.callJson("POST", "/control-planes/blue/services", R"({"name":"same","host":"b.test"})", 201);
  const uint64_t blue_gen = f.generation("blue");
  REQUIRE(testing::waitFor([&] { return blue.client->state().generation == blue_gen; }, 10s));
  {
    absl::MutexLock lock(&blue.mu);
    CHECK(blue.service_names == std::vector<std::string>{"same"});
  }
  // The default group's DP saw nothing new (give a stray push time to arrive).
  std::this_thread::sleep_for(300ms);
  CHECK(def.client->state().applies == def_applies);
  {
    absl::MutexLock lock(&def.mu);
    CHECK(def.service_names.empty());
  }
  // The same name in default reaches only default's DP.
  const uint64_t blue_applies = blue.client->state().applies;
  f.callJson("POST", "/services", R"({"name":"same","host":"d.test"})", 201);
  const uint64_t def_gen = f.generation("default");
  REQUIRE(testing::waitFor([&] { return def.client->state().generation == def_gen; }, 10s));
  std::this_thread::sleep_for(300ms);
  CHECK(blue.client->state().applies == blue_applies);
  def.client->stop();
  blue.client->stop();
  (*server)->shutdown();
  f.store->stop();
}

}  // namespace
}  // namespace portico::cp
