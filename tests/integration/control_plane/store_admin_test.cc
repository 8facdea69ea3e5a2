// The control plane's store and Admin API against a real PostgreSQL: migrations, CRUD over
// real HTTP, Kong error shapes, pagination, a generation bump per write and NOTIFY delivery.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/config/entities.h"
#include "control_plane/admin_api/http_server.h"
#include "control_plane/store/migrations.h"
#include "control_plane/store/pg_store_impl.h"
#include "tests/support/test_support.h"

namespace portico::cp {
namespace {

using nlohmann::json;
using testing::httpRequest;

// A migrated database, a store listening for changes, and the Admin API on a free port.
struct Fixture {
  testing::TestPostgres pg;
  std::unique_ptr<PgConfigStore> store;
  std::unique_ptr<AdminHttpServer> admin;
  std::mutex mu;
  std::vector<std::pair<std::string, uint64_t>> changes;

  Fixture() {
    auto applied = migrateUp(pg.dsn());
    REQUIRE(applied.ok());
    auto s = PgConfigStore::open({pg.dsn(), 4});
    REQUIRE(s.ok());
    store = std::move(*s);
    store->setChangeCallback([this](const std::string& group, uint64_t generation) {
      std::lock_guard<std::mutex> lock(mu);
      changes.emplace_back(group, generation);
    });
    store->startListening();
    AdminServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.max_body_bytes = 64 * 1024;
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
    return httpRequest("127.0.0.1", admin->port(), method, target, body, headers);
  }
  json callJson(const std::string& method, const std::string& target, const std::string& body,
                int expected_status) {
    auto r = call(method, target, body);
    INFO(method << " " << target << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == expected_status);
    return r.body.empty() ? json() : json::parse(r.body);
  }
  bool sawChange(uint64_t generation) {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& [g, gen] : changes) {
      if (g == "default" && gen == generation) {
        return true;
      }
    }
    return false;
  }
};

TEST_CASE("migrations: apply once, idempotent, and safe from two migrators at once") {
  testing::TestPostgres pg;
  auto before = pendingMigrations(pg.dsn());
  REQUIRE(before.ok());
  CHECK(before->size() == embeddedMigrations().size());

  std::vector<std::string> applied_a, applied_b;
  std::thread a([&] { applied_a = migrateUp(pg.dsn()).value(); });
  std::thread b([&] { applied_b = migrateUp(pg.dsn()).value(); });
  a.join();
  b.join();
  CHECK(applied_a.size() + applied_b.size() == embeddedMigrations().size());

  auto again = migrateUp(pg.dsn());
  REQUIRE(again.ok());
  CHECK(again->empty());
  CHECK(pendingMigrations(pg.dsn())->empty());
  CHECK(pg.psql("SELECT count(*) FROM schema_migrations")
            .find(std::to_string(embeddedMigrations().size())) != std::string::npos);
  CHECK(pg.psql("SELECT name, generation FROM groups").find("default") != std::string::npos);
  auto status = migrationStatus(pg.dsn());
  REQUIRE(status.ok());
  CHECK(status->at(0).name == "0001_init");
  CHECK(status->at(0).up_applied);
}

// PostgreSQL does not index the referencing side of a foreign key. Without such an index every
// deleted parent scans its child table (deleting 1,000 of 10,000 routes that each had a plugin
// took 987 ms; migration 0011), so a future table that forgets one fails here, by name.
TEST_CASE("migrations: every foreign key has an index that starts with its columns") {
  testing::TestPostgres pg;
  REQUIRE(migrateUp(pg.dsn()).ok());
  const std::string unindexed = pg.psql(
      "SELECT string_agg(c.conrelid::regclass || '.' || c.conname, ' ') FROM pg_constraint c "
      "WHERE c.contype = 'f' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = "
      "c.conrelid AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] = c.conkey)");
  INFO("foreign keys without an index: " << unindexed);
  CHECK(unindexed.find_first_not_of(" \n") == std::string::npos);
}

// Entity tables have no foreign key to groups (migration 0012: a trigger per inserted row);
// deleting a group deletes each entity table's rows itself. A table with a group_name column
// and neither such a key nor an entity schema (which deleteGroup walks) would keep a deleted
// group's rows: it fails here, by name.
TEST_CASE("migrations: every group-scoped table is emptied when its group is deleted") {
  testing::TestPostgres pg;
  REQUIRE(migrateUp(pg.dsn()).ok());
  const std::string tables = pg.psql(
      "SELECT string_agg(c.table_name, ' ' ORDER BY c.table_name) FROM information_schema.columns c "
      "JOIN information_schema.tables t ON t.table_name = c.table_name AND t.table_schema = "
      "c.table_schema AND t.table_type = 'BASE TABLE' WHERE c.table_schema = 'public' AND "
      "c.column_name = 'group_name' AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE "
      "k.contype = 'f' AND k.conrelid = c.table_name::regclass AND k.confrelid = "
      "'groups'::regclass)");
  std::vector<std::string> unguarded;
  for (absl::string_view t : absl::StrSplit(tables, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    // Not config, and outside this check: the change log (deleteGroup empties it), the node
    // registry and the vitals history (their own retention).
    const bool not_config = t == "change_log" || t == "clustering_data_planes" ||
                            absl::StartsWith(t, "vitals_");
    if (!not_config && config::findEntitySchema(std::string(t)) == nullptr) {
      unguarded.emplace_back(t);
    }
  }
  INFO("group-scoped tables nothing empties: " << absl::StrJoin(unguarded, " "));
  CHECK(unguarded.empty());
  CHECK(tables.find("routes") != std::string::npos);  // the entity tables are in the list

  // And deleting a group leaves none of its rows behind.
  auto store = std::move(PgConfigStore::open({pg.dsn(), 2}).value());
  GroupRecord doomed;
  doomed.name = "doomed";
  REQUIRE(store->createGroup(doomed).ok());
  auto svc = store->writeJson("doomed", "services",
                              json{{"id", "00000000-0000-4000-8000-000000000001"},
                                   {"name", "s"}, {"host", "h.test"}, {"port", 80},
                                   {"protocol", "http"}},
                              WriteMode::kCreate);
  REQUIRE(svc.ok());
  REQUIRE(store->writeJson("doomed", "routes",
                           json{{"id", "00000000-0000-4000-8000-000000000002"},
                                {"name", "r"}, {"paths", {"/x"}},
                                {"service", {{"id", "00000000-0000-4000-8000-000000000001"}}}},
                           WriteMode::kCreate).ok());
  REQUIRE(store->deleteGroup("doomed").ok());
  CHECK(pg.psql("SELECT count(*) FROM services WHERE group_name = 'doomed'") == "0\n");
  CHECK(pg.psql("SELECT count(*) FROM routes WHERE group_name = 'doomed'") == "0\n");
  CHECK(pg.psql("SELECT count(*) FROM change_log WHERE group_name = 'doomed'") == "0\n");
  store->stop();
}

TEST_CASE("store: unreachable database is kUnavailable with host and port") {
  const int port = testing::freePort();
  auto s = PgConfigStore::open(
      {"host=127.0.0.1 port=" + std::to_string(port) + " dbname=x user=postgres", 1});
  REQUIRE(absl::IsUnavailable(s.status()));
  CHECK(std::string(s.status().message()) == "cannot connect to PostgreSQL at 127.0.0.1:" +
                                                 std::to_string(port) + ": connection refused");
}

TEST_CASE("admin api: services and routes CRUD, generations, notifications, snapshot") {
  Fixture f;
  CHECK(*f.store->currentGeneration("default") == 0);

  // Create: 201, defaults filled, every field present.
  json svc = f.callJson("POST", "/services", R"j({"name":"svc-a","url":"http://a.test:8080/p"})j",
                        201);
  CHECK(svc["protocol"] == "http");
  CHECK(svc["host"] == "a.test");
  CHECK(svc["port"] == 8080);
  CHECK(svc["path"] == "/p");
  CHECK(svc["tags"].is_null());
  CHECK(svc["created_at"].is_number_integer());
  CHECK_FALSE(svc.contains("url"));
  const std::string svc_id = svc["id"];
  CHECK(*f.store->currentGeneration("default") == 1);
  CHECK(testing::waitFor([&] { return f.sawChange(1); }, std::chrono::seconds(5)));

  auto r = f.call("GET", "/services/svc-a");
  CHECK(r.status == 200);
  CHECK(r.headers["content-type"] == "application/json; charset=utf-8");
  CHECK(json::parse(r.body) == svc);
  CHECK(f.callJson("GET", "/services/" + svc_id, "", 200)["name"] == "svc-a");

  // Routes: nested create, by-name service reference, /routes/{r}/service.
  json route = f.callJson("POST", "/services/svc-a/routes", R"j({"name":"r1","paths":["/a"]})j",
                          201);
  CHECK(route["service"] == json{{"id", svc_id}});
  CHECK(route["protocols"] == json::array({"http", "https"}));
  json route2 = f.callJson("POST", "/routes",
                           R"j({"name":"r2","hosts":["b.test"],"service":{"name":"svc-a"}})j", 201);
  CHECK(route2["service"] == json{{"id", svc_id}});
  CHECK(f.callJson("GET", "/routes/r1/service", "", 200)["id"] == svc_id);
  CHECK(f.callJson("GET", "/services/svc-a/routes", "", 200)["data"].size() == 2);
  CHECK(*f.store->currentGeneration("default") == 3);

  // PATCH merges and bumps; PUT replaces (unsent fields back to defaults).
  json patched = f.callJson("PATCH", "/services/svc-a", R"j({"retries":2})j", 200);
  CHECK(patched["retries"] == 2);
  CHECK(patched["host"] == "a.test");
  CHECK(patched["created_at"] == svc["created_at"]);
  json put = f.callJson("PUT", "/services/svc-a", R"j({"host":"c.test"})j", 200);
  CHECK(put["id"] == svc_id);
  CHECK(put["retries"] == 5);
  CHECK(put["path"].is_null());
  CHECK(put["name"] == "svc-a");
  json created_by_put = f.callJson("PUT", "/services/svc-new", R"j({"host":"n.test"})j", 200);
  CHECK(created_by_put["name"] == "svc-new");
  CHECK(*f.store->currentGeneration("default") == 6);
  CHECK(testing::waitFor([&] { return f.sawChange(6); }, std::chrono::seconds(5)));

  // Snapshot: one consistent read with the generation.
  auto snap = f.store->loadSnapshot("default");
  REQUIRE(snap.ok());
  CHECK(snap->generation() == 6);
  CHECK(snap->services_size() == 2);
  CHECK(snap->routes_size() == 2);

  // Deleting a service routes use is refused; deleting what is absent is 204 without a bump.
  CHECK(f.callJson("DELETE", "/services/svc-a", "", 400) ==
        json::parse(R"j({"code":4,"name":"foreign key violation",
          "message":"an existing 'routes' entity references this 'services' entity",
          "fields":{"@referenced_by":"routes"}})j"));
  f.callJson("DELETE", "/routes/r1", "", 204);
  f.callJson("DELETE", "/routes/" + route2["id"].get<std::string>(), "", 204);
  f.callJson("DELETE", "/services/svc-a", "", 204);
  CHECK(*f.store->currentGeneration("default") == 9);
  f.callJson("DELETE", "/services/svc-a", "", 204);
  f.callJson("DELETE", "/routes/no-such-route", "", 204);
  CHECK(*f.store->currentGeneration("default") == 9);
  CHECK(f.callJson("GET", "/services/svc-a", "", 404) == json{{"message", "Not found"}});
  CHECK(f.pg.psql("SELECT count(*) FROM change_log").find("9") != std::string::npos);
}

TEST_CASE("admin api: error shapes") {
  Fixture f;
  CHECK(f.callJson("POST", "/services", "{not json", 400) ==
        json{{"message", "Cannot parse JSON body"}});
  CHECK(f.callJson("POST", "/services", R"j({"host":"a.test","foo":1})j", 400) ==
        json::parse(R"j({"code":2,"name":"schema violation",
          "message":"schema violation (foo: unknown field)","fields":{"foo":"unknown field"}})j"));
  CHECK(f.callJson("POST", "/services", R"j({"host":"a.test:80","port":"x"})j", 400)["message"] ==
        "2 schema violations (host: must not have a port; port: expected an integer)");
  f.callJson("POST", "/services", R"j({"name":"dup","host":"a.test"})j", 201);
  CHECK(f.callJson("POST", "/services", R"j({"name":"dup","host":"b.test"})j", 409) ==
        json::parse(R"j({"code":5,"name":"unique constraint violation",
          "message":"UNIQUE violation detected on '{name=\"dup\"}'","fields":{"name":"dup"}})j"));
  CHECK(f.callJson("PUT", "/services", R"j({})j", 405) == json{{"message", "Method not allowed"}});
  CHECK(f.callJson("DELETE", "/routes/x/service", "", 405) ==
        json{{"message", "Method not allowed"}});
  CHECK(f.callJson("GET", "/nope", "", 404) == json{{"message", "Not found"}});
  CHECK(f.callJson("PATCH", "/services/missing", R"j({"retries":1})j", 404) ==
        json{{"message", "Not found"}});
  CHECK(f.callJson("GET", "/services?size=0", "", 400) ==
        json::parse(R"j({"code":9,"name":"invalid size",
          "message":"size must be an integer between 1 and 1000"})j"));
  CHECK(f.callJson("GET", "/services?size=abc", "", 400)["message"] == "size must be a number");
  CHECK(f.callJson("GET", "/services?offset=!!!", "", 400)["code"] == 7);
  CHECK(f.call("POST", "/services", std::string(70 * 1024, ' ')).status == 413);
  const json status = f.callJson("GET", "/status", "", 200);
  CHECK(status["database"]["reachable"] == true);
  const auto root = f.callJson("GET", "/", "", 200);
  CHECK(root["tagline"] == "Welcome to portico");
  CHECK(root["version"] == "3.10.0");  // the Kong release whose Admin API we follow
  CHECK(root["portico_version"].is_string());
}

TEST_CASE("admin api: pagination with size, offset and next") {
  Fixture f;
  for (int i = 1; i <= 10; ++i) {
    f.callJson("POST", "/services",
               "{\"name\":\"svc-" + std::to_string(i) + "\",\"host\":\"s.test\"}", 201);
  }
  json all = f.callJson("GET", "/services", "", 200);
  CHECK(all["data"].size() == 10);
  CHECK(all["next"].is_null());
  CHECK_FALSE(all.contains("offset"));

  std::set<std::string> seen;
  std::string target = "/services?size=3";
  int pages = 0;
  while (true) {
    json page = f.callJson("GET", target, "", 200);
    ++pages;
    for (const auto& s : page["data"]) {
      seen.insert(s["id"].get<std::string>());
    }
    if (page["next"].is_null()) {
      CHECK(page["data"].size() == 1);
      break;
    }
    CHECK(page["data"].size() == 3);
    CHECK(page["next"].get<std::string>().ends_with("&size=3"));
    target = page["next"];
  }
  CHECK(pages == 4);
  CHECK(seen.size() == 10);
}

// Two requests on one connection: the server keeps it open between them.
TEST_CASE("admin api: keep-alive") {
  Fixture f;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(f.admin->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  const std::string req = "GET /services HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string received;
  for (int i = 0; i < 2; ++i) {
    REQUIRE(::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size()));
    char buf[4096];
    // Each response is small and arrives in one read on loopback.
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    REQUIRE(n > 0);
    received.assign(buf, static_cast<size_t>(n));
    CHECK(received.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(received.find("{\"data\":[],\"next\":null}") != std::string::npos);
  }
  ::close(fd);
}

}  // namespace
}  // namespace portico::cp

namespace portico::cp {
namespace {

// The listener reconnects when its connection is killed and still reports later changes.
TEST_CASE("store: change listener survives a dropped connection") {
  Fixture f;
  f.callJson("POST", "/services", R"j({"host":"a.test"})j", 201);
  REQUIRE(testing::waitFor([&] { return f.sawChange(1); }, std::chrono::seconds(5)));
  f.pg.psql(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()");
  f.callJson("POST", "/services", R"j({"host":"b.test"})j", 201);
  // Delivered either by NOTIFY on the new connection or by the catch-up after reconnecting.
  CHECK(testing::waitFor([&] { return f.sawChange(2); }, std::chrono::seconds(10)));
}

}  // namespace
}  // namespace portico::cp
