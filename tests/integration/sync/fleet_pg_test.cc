// Fleet registry and liveness against real PostgreSQL and real gRPC: Hello version checks
// (refused major, recorded on the node), 3 missed heartbeats = offline, batched status
// writes (one statement per flush per 1,000 nodes), the /clustering endpoints' shapes, and
// the purge of nodes not seen for the purge delay.
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <thread>
#include <vector>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "control_plane/fleet/fleet_registry.h"
#include "control_plane/store/migrations.h"
#include "control_plane/store/pg_changes.h"
#include "control_plane/store/pg_store_impl.h"
#include "common/metrics/metrics.h"
#include "control_plane/sync/sync_server.h"
#include "data_plane/sync_client/sync_client.h"
#include "grpcpp/grpcpp.h"
#include "portico/sync/v1/sync.grpc.pb.h"
#include "tests/support/test_support.h"

namespace portico {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

struct Cp {
  testing::TestPostgres pg;
  std::unique_ptr<cp::PgConfigStore> store;
  std::unique_ptr<cp::PgChangeLogStore> changes;
  std::unique_ptr<cp::SyncServer> server;

  explicit Cp(uint32_t heartbeat_ms = 100) {
    REQUIRE(cp::migrateUp(pg.dsn()).ok());
    auto s = cp::PgConfigStore::open({pg.dsn(), 2});
    REQUIRE(s.ok());
    store = std::move(*s);
    changes = std::make_unique<cp::PgChangeLogStore>(*store, pg.dsn());
    cp::SyncServerOptions o;
    o.listen_address = "127.0.0.1:0";
    o.insecure = true;
    o.heartbeat_interval_ms = heartbeat_ms;
    o.cp_version = "1.4.0";
    auto srv = cp::SyncServer::start(*changes, o);
    REQUIRE(srv.ok());
    server = std::move(*srv);
  }
  ~Cp() { server->shutdown(); }
  std::string address() const { return absl::StrCat("127.0.0.1:", server->port()); }
};

std::unique_ptr<dp::SyncClient> client(const Cp& cp, const std::string& version,
                                       const std::string& node_id) {
  dp::SyncClient::Options o;
  o.cp_address = cp.address();
  o.insecure = true;
  o.version = version;
  o.node_id = node_id;
  o.hostname = "dp-" + node_id.substr(0, 4);
  o.labels = {{"region", "eu"}};
  o.backoff_initial_ms = 50;
  o.backoff_max_ms = 200;
  auto c = std::make_unique<dp::SyncClient>(
      o, [](const config::v1::Snapshot&, const std::string&, config::FieldErrors*) {
        return absl::OkStatus();
      });
  REQUIRE(c->start().ok());
  return c;
}

std::optional<cp::NodeStatus> node(cp::SyncServer& s, const std::string& id) {
  for (auto& n : s.nodes()) {
    if (n.node_id == id) {
      return n;
    }
  }
  return std::nullopt;
}

TEST_CASE("fleet: an incompatible major is refused and recorded; an older minor is served") {
  Cp cp;
  auto bad = client(cp, "2.0.0", "aaaaaaaa-0000-4000-8000-000000000001");
  auto old_minor = client(cp, "1.2.7", "aaaaaaaa-0000-4000-8000-000000000002");
  REQUIRE(testing::waitFor([&] { return !old_minor->state().config_hash.empty(); }, 10s));
  REQUIRE(testing::waitFor(
      [&] {
        auto n = node(*cp.server, "aaaaaaaa-0000-4000-8000-000000000001");
        return n && n->sync_status == "version_incompatible";
      },
      10s));
  auto n = node(*cp.server, "aaaaaaaa-0000-4000-8000-000000000001");
  CHECK_FALSE(n->connected);
  REQUIRE(n->compatibility_issues.size() == 1);
  CHECK(n->compatibility_issues[0].description.find("major") != std::string::npos);
  CHECK(bad->state().config_hash.empty());  // it never got config
  CHECK(node(*cp.server, "aaaaaaaa-0000-4000-8000-000000000002")->sync_status == "normal");
  CHECK(cp.server->stats().refused >= 1);

  CHECK(cp::versionIncompatibility("1.4.0", "1.5.0").has_value());  // newer minor: refused
  CHECK_FALSE(cp::versionIncompatibility("1.4.0", "1.4.9-rc1").has_value());
  CHECK(cp::versionIncompatibility("1.4.0", "banana").has_value());
}

// A Hello's node fields become Prometheus label values and /clustering rows: oversized
// fields or control characters are refused with the field named, invalid UTF-8 already by
// protobuf's parser, and the node is not registered.
TEST_CASE("fleet: a Hello with an oversized, non-UTF-8 or control-character node field is "
          "refused") {
  Cp cp(100);
  auto channel = grpc::CreateChannel(cp.address(), grpc::InsecureChannelCredentials());
  auto stub = sync::v1::ConfigSync::NewStub(channel);
  struct Case {
    std::string node_id, hostname, version, message;
  };
  const std::string id = "dddddddd-0000-4000-8000-000000000001";
  const std::vector<Case> cases = {
      {id, "dp\xff\xfe", "1.4.0", "malformed DataPlaneMessage (protobuf parse failed)"},
      {id, std::string(256, 'h'), "1.4.0", "hello.hostname is longer than 255 bytes"},
      {id, "dp-1\nkong_fake 1", "1.4.0", "hello.hostname contains a control character"},
      {std::string(129, 'n'), "dp", "1.4.0", "hello.node_id is longer than 128 bytes"},
      {id, "dp", "1.4.0\xc3", "malformed DataPlaneMessage (protobuf parse failed)"},
      {id, "dp", std::string(65, '1'), "hello.version is longer than 64 bytes"},
  };
  for (const Case& c : cases) {
    INFO(c.message);
    grpc::ClientContext ctx;
    auto stream = stub->Sync(&ctx);
    sync::v1::DataPlaneMessage hello;
    hello.mutable_hello()->set_node_id(c.node_id);
    hello.mutable_hello()->set_hostname(c.hostname);
    hello.mutable_hello()->set_version(c.version);
    REQUIRE(stream->Write(hello));
    sync::v1::ControlPlaneMessage msg;
    while (stream->Read(&msg)) {
    }
    const grpc::Status st = stream->Finish();
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() == c.message);
  }
  CHECK(cp.server->nodes().empty());
  CHECK(cp.server->stats().refused == 4);  // the two non-UTF-8 ones never parsed
}

// NACK reasons are metric labels from bounded sets, whatever a DP puts in its NACK.
TEST_CASE("fleet: NACK reasons are counted under known codes and entity types only") {
  Cp cp(100);
  auto channel = grpc::CreateChannel(cp.address(), grpc::InsecureChannelCredentials());
  auto stub = sync::v1::ConfigSync::NewStub(channel);
  grpc::ClientContext ctx;
  auto stream = stub->Sync(&ctx);
  sync::v1::DataPlaneMessage hello;
  hello.mutable_hello()->set_node_id("eeeeeeee-0000-4000-8000-000000000001");
  hello.mutable_hello()->set_hostname("dp-nack");
  hello.mutable_hello()->set_version("1.4.0");
  REQUIRE(stream->Write(hello));
  auto nack = [&](int code, const std::string& entity_type) {
    sync::v1::DataPlaneMessage m;
    m.mutable_nack()->set_generation(1);
    m.mutable_nack()->set_code(code);
    m.mutable_nack()->set_message("rejected");
    if (!entity_type.empty()) {
      m.mutable_nack()->add_errors()->set_entity_type(entity_type);
    }
    REQUIRE(stream->Write(m));
  };
  nack(3, "routes");
  nack(3, "routes\n# junk");
  nack(3, std::string(100000, 'x'));
  nack(12345, "");
  REQUIRE(testing::waitFor([&] { return cp.server->stats().nacks == 4; }, 10s));
  metrics::Writer w;
  cp.server->writeMetrics(w);
  const std::string text = w.text();
  INFO(text);
  CHECK(text.find("portico_cp_sync_nack_reasons_total{code=\"INVALID_ARGUMENT\",entity_type=\"routes\"} 1") !=
        std::string::npos);
  CHECK(text.find("portico_cp_sync_nack_reasons_total{code=\"INVALID_ARGUMENT\",entity_type=\"other\"} 2") !=
        std::string::npos);
  CHECK(text.find("portico_cp_sync_nack_reasons_total{code=\"UNKNOWN_CODE\",entity_type=\"none\"} 1") !=
        std::string::npos);
  CHECK(text.find("junk") == std::string::npos);
  stream->WritesDone();
  ctx.TryCancel();
}

TEST_CASE("fleet: a DP that stops sending is dropped after 3 missed heartbeats") {
  Cp cp(100);
  auto channel = grpc::CreateChannel(cp.address(), grpc::InsecureChannelCredentials());
  auto stub = sync::v1::ConfigSync::NewStub(channel);
  grpc::ClientContext ctx;
  auto stream = stub->Sync(&ctx);
  sync::v1::DataPlaneMessage hello;
  hello.mutable_hello()->set_node_id("bbbbbbbb-0000-4000-8000-000000000001");
  hello.mutable_hello()->set_version("1.4.0");
  REQUIRE(stream->Write(hello));
  const auto start = std::chrono::steady_clock::now();
  sync::v1::ControlPlaneMessage msg;
  while (stream->Read(&msg)) {
  }
  const grpc::Status st = stream->Finish();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(st.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(st.error_message() == "missed heartbeats");
  CHECK(elapsed >= 250ms);
  CHECK(elapsed < 2s);
  REQUIRE(testing::waitFor(
      [&] {
        auto n = node(*cp.server, "bbbbbbbb-0000-4000-8000-000000000001");
        return n && !n->connected;
      },
      5s));
  CHECK(cp.server->stats().liveness_drops >= 1);
}

TEST_CASE("fleet: status is written in batches and served in Kong's and Konnect's shapes") {
  Cp cp(100);
  cp::fleet::FleetOptions fo;
  fo.dsn = cp.pg.dsn();
  fo.flush_interval = absl::Milliseconds(200);
  fo.max_rows_per_statement = 2;  // 3 nodes -> 2 statements per flush
  fo.offline_after = absl::Seconds(5);
  cp::fleet::FleetRegistry fleet(cp.server->registry(), fo);

  std::vector<std::unique_ptr<dp::SyncClient>> dps;
  for (int i = 1; i <= 3; ++i) {
    dps.push_back(client(cp, "1.4.0", absl::StrCat("cccccccc-0000-4000-8000-00000000000", i)));
  }
  REQUIRE(testing::waitFor([&] { return cp.server->nodes().size() == 3; }, 10s));
  REQUIRE(testing::waitFor(
      [&] {
        for (auto& d : dps) {
          if (d->state().config_hash.empty()) return false;
        }
        return true;
      },
      10s));
  std::this_thread::sleep_for(300ms);  // a few heartbeats each: all dirty again, written once
  auto statements = fleet.flush();
  REQUIRE(statements.ok());
  CHECK(*statements == 2);

  auto r = fleet.handle("GET", {"clustering", "data-planes"}, {});
  REQUIRE(r.has_value());
  REQUIRE(r->status == 200);
  json body = json::parse(r->body);
  REQUIRE(body["data"].size() == 3);
  const json& d = body["data"][0];
  for (const char* f :
       {"id", "ip", "hostname", "version", "sync_status", "config_hash", "last_seen", "labels"}) {
    INFO(f);
    CHECK(d.contains(f));
  }
  CHECK(d["ip"] == "127.0.0.1");
  CHECK(d["version"] == "1.4.0");
  CHECK(d["sync_status"] == "normal");
  CHECK(d["labels"]["region"] == "eu");
  CHECK(d["config_hash"].get<std::string>().size() == 64);
  // last_seen is the wall clock of the last heartbeat (it was stored to 6 digits once,
  // up to ~1.4 h off, and live nodes showed connected: false).
  const int64_t now_s = static_cast<int64_t>(std::time(nullptr));
  for (const json& node : body["data"]) {
    CHECK(std::llabs(node["last_seen"].get<int64_t>() - now_s) <= 5);
    CHECK(node["connected"] == true);
  }

  r = fleet.handle("GET", {"clustering", "status"}, {});
  REQUIRE(r.has_value());
  body = json::parse(r->body);
  CHECK(body.size() == 3);
  CHECK(body["cccccccc-0000-4000-8000-000000000001"].contains("config_hash"));

  r = fleet.handle("GET", {"control-planes", "default", "nodes"}, {});
  REQUIRE(r.has_value());
  REQUIRE(r->status == 200);
  body = json::parse(r->body);
  CHECK(body["page"]["total"] == 3);
  CHECK(body["items"][0]["compatibility_status"]["state"] ==
        "COMPATIBILITY_STATE_FULLY_COMPATIBLE");
  CHECK(fleet.handle("GET", {"control-planes", "nope", "nodes"}, {})->status == 404);
  CHECK_FALSE(fleet.handle("GET", {"services"}, {}).has_value());

  // What the CP strips for an older DP is listed on the node, entity by entity.
  cp.server->registry().setCompatibilityIssues(
      "cccccccc-0000-4000-8000-000000000001",
      {{"P0001", "warning", "needs 0.1", "upstreams", "up-1", "hash_on_query_arg"}});
  REQUIRE(fleet.flush().ok());
  body = json::parse(fleet.handle("GET", {"clustering", "data-planes"}, {})->body);
  const json& issue = body["data"][0]["compatibility_issues"][0];
  CHECK(issue["id"] == "P0001");
  CHECK(issue["entity_type"] == "upstreams");
  CHECK(issue["entity_id"] == "up-1");
  CHECK(issue["field"] == "hash_on_query_arg");
  body = json::parse(fleet.handle("GET", {"control-planes", "default", "nodes"}, {})->body);
  CHECK(body["items"][0]["compatibility_status"]["state"] ==
        "COMPATIBILITY_STATE_COMPATIBLE_WITH_LIMITATIONS");

  SECTION("purge removes nodes not seen for the purge delay") {
    cp.pg.psql("UPDATE clustering_data_planes SET last_seen = now() - interval '30 days' "
               "WHERE id = 'cccccccc-0000-4000-8000-000000000001'");
    auto purged = fleet.purge();
    REQUIRE(purged.ok());
    CHECK(*purged == 1);
    CHECK(json::parse(fleet.handle("GET", {"clustering", "status"}, {})->body).size() == 2);
  }
}

TEST_CASE("fleet: 1,000 nodes' heartbeats cost one statement per flush") {
  cp::NodeRegistry registry;
  testing::TestPostgres pg;
  REQUIRE(cp::migrateUp(pg.dsn()).ok());
  cp::fleet::FleetOptions fo;
  fo.dsn = pg.dsn();
  cp::fleet::FleetRegistry fleet(registry, fo);
  for (int i = 0; i < 1000; ++i) {
    registry.onHello(static_cast<uint64_t>(i) + 1, absl::StrCat("node-", i), "h", "1.0.0",
                     "default", 1, "x");
  }
  for (int round = 0; round < 3; ++round) {  // many heartbeats between two flushes
    for (int i = 0; i < 1000; ++i) {
      registry.onHeartbeat(absl::StrCat("node-", i), 2, "y");
    }
  }
  auto statements = fleet.flush();
  REQUIRE(statements.ok());
  CHECK(*statements == 1);
  CHECK(fleet.stats().rows == 1000);
  CHECK(pg.psql("SELECT count(*) FROM clustering_data_planes WHERE generation = 2")
            .find("1000") != std::string::npos);
}

}  // namespace
}  // namespace portico

namespace portico {
namespace {

// GET /upstreams/{u}/health: the store's targets, the health the connected DPs report
// (Heartbeat.upstreams), merged: a target is HEALTHY if any connected node sees it healthy.
TEST_CASE("fleet: upstream health is merged over the group's connected nodes") {
  Cp cp(100);
  cp::fleet::FleetOptions fo;
  fo.dsn = cp.pg.dsn();
  cp::fleet::FleetRegistry fleet(cp.server->registry(), fo);
  const std::string up = "11111111-1111-4111-8111-111111111111";
  {
    pqxx::connection conn(cp.pg.dsn());
    pqxx::work txn(conn);
    txn.exec_params("INSERT INTO upstreams (group_name, id, entity, created_at, updated_at) "
                    "VALUES ('default', $1, $2::jsonb, 1, 1)",
                    up, json{{"id", up}, {"name", "up1"}}.dump());
    int i = 0;
    for (const char* t : {"10.0.0.1:80", "10.0.0.2:80"}) {
      const std::string id = absl::StrCat("22222222-2222-4222-8222-00000000000", ++i);
      txn.exec_params(
          "INSERT INTO targets (group_name, id, entity, created_at, updated_at) "
          "VALUES ('default', $1, $2::jsonb, $3, $3)",
          id, json{{"id", id}, {"target", t}, {"weight", 50}, {"upstream", {{"id", up}}},
                   {"tags", {"t"}}}.dump(),
          i);
    }
    txn.commit();
  }
  // Node a sees 10.0.0.1 healthy, node b sees it unhealthy; both see 10.0.0.2 unhealthy.
  auto report = [&](bool first_healthy) {
    return [=] {
      sync::v1::UpstreamHealth u;
      u.set_upstream_id(up);
      u.set_name("up1");
      int k = 0;
      for (const std::string& t : {std::string("10.0.0.1"), std::string("10.0.0.2")}) {
        const bool healthy = ++k == 1 && first_healthy;
        auto* th = u.add_targets();
        th->set_target(t + ":80");
        th->set_weight(50);
        th->set_health(healthy ? "HEALTHY" : "UNHEALTHY");
        auto* a = th->add_addresses();
        a->set_ip(t);
        a->set_port(80);
        a->set_healthy(healthy);
      }
      return std::vector<sync::v1::UpstreamHealth>{u};
    };
  };
  auto start = [&](const std::string& id, bool first_healthy) {
    dp::SyncClient::Options o;
    o.cp_address = cp.address();
    o.insecure = true;
    o.version = "1.4.0";
    o.node_id = id;
    o.hostname = "dp-" + id.substr(0, 1);
    o.health = report(first_healthy);
    auto c = std::make_unique<dp::SyncClient>(
        o, [](const config::v1::Snapshot&, const std::string&, config::FieldErrors*) {
          return absl::OkStatus();
        });
    REQUIRE(c->start().ok());
    return c;
  };
  auto a = start("aaaaaaaa-0000-4000-8000-000000000001", true);
  auto b = start("bbbbbbbb-0000-4000-8000-000000000002", false);
  auto get = [&](std::vector<std::string> path) {
    auto r = fleet.handle("GET", path, {});
    REQUIRE(r.has_value());
    return std::make_pair(r->status, json::parse(r->body, nullptr, false));
  };
  REQUIRE(testing::waitFor(
      [&] { return get({"upstreams", "up1", "health"}).second["nodes"].size() == 2; }, 10s));
  auto [status, body] = get({"upstreams", "up1", "health"});
  INFO(body.dump());
  CHECK(status == 200);
  CHECK(body["total"] == 2);
  CHECK(body["node_id"].is_null());  // several nodes report
  REQUIRE(body["data"].size() == 2);
  const json& t1 = body["data"][0];
  CHECK(t1["target"] == "10.0.0.1:80");
  CHECK(t1["id"] == "22222222-2222-4222-8222-000000000001");
  CHECK(t1["weight"] == 50);
  CHECK(t1["upstream"]["id"] == up);
  CHECK(t1["tags"] == json{"t"});
  CHECK(t1["health"] == "HEALTHY");  // node a can use it
  CHECK(t1["data"]["addresses"] ==
        json::parse(R"([{"ip":"10.0.0.1","port":80,"health":"HEALTHY","weight":50}])"));
  CHECK(t1["nodes"].size() == 2);
  CHECK(body["data"][1]["health"] == "UNHEALTHY");
  // By id, and through the group's path; unknown upstream or group: 404; other methods: 405.
  CHECK(get({"upstreams", up, "health"}).second["data"].size() == 2);
  CHECK(get({"control-planes", "default", "upstreams", "up1", "health"}).first == 200);
  CHECK(get({"upstreams", "nope", "health"}).first == 404);
  CHECK(get({"control-planes", "nope", "upstreams", "up1", "health"}).first == 404);
  CHECK(fleet.handle("DELETE", {"upstreams", "up1", "health"}, {})->status == 405);

  // Node a goes away: only b's view is merged, so 10.0.0.1 is UNHEALTHY.
  a.reset();
  REQUIRE(testing::waitFor(
      [&] {
        auto [s, j] = get({"upstreams", "up1", "health"});
        return s == 200 && j["data"][0]["health"] == "UNHEALTHY" && j["nodes"].size() == 1;
      },
      10s));
  CHECK(get({"upstreams", "up1", "health"}).second["node_id"] ==
        "bbbbbbbb-0000-4000-8000-000000000002");
}

}  // namespace
}  // namespace portico
