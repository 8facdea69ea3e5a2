// Deltas against real PostgreSQL: randomized writes through the store, then (1) for random
// earlier generations, loadChanges() applied to the snapshot read at that generation equals
// a fresh full read, byte for byte; (2) a real SyncClient behind a real SyncServer follows
// every change by deltas and always runs exactly the hash of a full read.
#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "common/sync/delta.h"
#include "control_plane/store/migrations.h"
#include "control_plane/store/pg_changes.h"
#include "control_plane/store/pg_store_impl.h"
#include "control_plane/sync/sync_server.h"
#include "data_plane/sync_client/sync_client.h"
#include "tests/support/test_support.h"

namespace portico {
namespace {

using namespace std::chrono_literals;
namespace v1 = config::v1;

std::string uuid(std::mt19937_64& rng) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) {
      s.push_back('-');
    }
    s.push_back(kHex[rng() % 16]);
  }
  return s;
}

struct Db {
  testing::TestPostgres pg;
  std::unique_ptr<cp::PgConfigStore> store;
  std::unique_ptr<cp::PgChangeLogStore> changes;
  std::vector<std::string> services, routes;

  Db() {
    REQUIRE(cp::migrateUp(pg.dsn()).ok());
    auto s = cp::PgConfigStore::open({pg.dsn(), 4});
    REQUIRE(s.ok());
    store = std::move(*s);
    changes = std::make_unique<cp::PgChangeLogStore>(*store, pg.dsn());
  }

  v1::Snapshot read() {
    auto s = store->loadSnapshot("default");
    REQUIRE(s.ok());
    sync::canonicalize(&*s);
    return *s;
  }

  // One random write; writes the database refuses (a service routes still use) are fine.
  void randomWrite(std::mt19937_64& rng) {
    const int op = static_cast<int>(rng() % 6);
    if (op <= 1 || services.empty()) {
      v1::Service s;
      s.set_id(services.empty() || op == 0 ? uuid(rng) : services[rng() % services.size()]);
      s.set_name(absl::StrCat("svc-", s.id().substr(0, 8)));
      s.set_protocol("http");
      s.set_host(absl::StrCat("h", rng() % 1000, ".internal"));
      s.set_port(80);
      s.set_retries(5);
      s.set_connect_timeout(60000);
      s.set_write_timeout(60000);
      s.set_read_timeout(60000);
      s.set_enabled(true);
      auto w = store->upsertService("default", s);
      REQUIRE(w.ok());
      if (std::find(services.begin(), services.end(), s.id()) == services.end()) {
        services.push_back(s.id());
      }
    } else if (op <= 3 || routes.empty()) {
      v1::Route r;
      r.set_id(routes.empty() || op == 2 ? uuid(rng) : routes[rng() % routes.size()]);
      r.add_protocols("http");
      r.add_paths(absl::StrCat("/p", rng() % 500));
      r.set_path_handling("v0");
      r.set_https_redirect_status_code(426);
      r.set_strip_path(true);
      r.set_request_buffering(true);
      r.set_response_buffering(true);
      if (rng() % 4 != 0) {
        r.set_service_id(services[rng() % services.size()]);
      }
      auto w = store->upsertRoute("default", r);
      REQUIRE(w.ok());
      if (std::find(routes.begin(), routes.end(), r.id()) == routes.end()) {
        routes.push_back(r.id());
      }
    } else if (op == 4) {
      const size_t i = rng() % routes.size();
      REQUIRE(store->deleteRoute("default", routes[i]).ok());
      routes.erase(routes.begin() + static_cast<long>(i));
    } else {
      const size_t i = rng() % services.size();
      auto d = store->deleteService("default", services[i]);
      if (d.ok()) {
        services.erase(services.begin() + static_cast<long>(i));
      } else {
        REQUIRE(d.status().code() == absl::StatusCode::kFailedPrecondition);  // RESTRICT
      }
    }
  }
};

TEST_CASE("delta_pg: change log deltas from any earlier generation equal a full read") {
  Db db;
  std::mt19937_64 rng(42);
  std::map<uint64_t, v1::Snapshot> history;
  history[0] = db.read();
  int checked = 0;
  for (int step = 0; step < 120; ++step) {
    db.randomWrite(rng);
    const v1::Snapshot full = db.read();
    history[full.generation()] = full;
    if (step % 4 != 3) {
      continue;
    }
    auto it = history.begin();
    std::advance(it, static_cast<long>(rng() % history.size()));
    auto cs = db.changes->loadChanges("default", it->first, 100000);
    REQUIRE(cs.ok());
    REQUIRE(cs->generation == full.generation());
    sync::v1::SnapshotDelta d;
    d.set_base_generation(it->first);
    d.set_generation(cs->generation);
    *d.mutable_upserts() = cs->upserts;
    sync::canonicalize(d.mutable_upserts());
    for (const auto& [type, id] : cs->deletes) {
      auto* ref = d.add_deletes();
      ref->set_entity_type(type);
      ref->set_entity_id(id);
    }
    v1::Snapshot dp = it->second;
    REQUIRE(sync::applyDelta(&dp, d).ok());
    INFO("from generation " << it->first << " to " << full.generation());
    REQUIRE(*sync::hashSnapshot(dp) == *sync::hashSnapshot(full));
    ++checked;
  }
  CHECK(checked >= 25);

  SECTION("the window edge: too many changed entities is OUT_OF_RANGE (full snapshot)") {
    auto cs = db.changes->loadChanges("default", 0, 3);
    CHECK(cs.status().code() == absl::StatusCode::kOutOfRange);
    // The limit counts change_log rows (an entity written twice counts twice): exactly that
    // many pass, one fewer does not.
    const uint64_t rows =
        std::stoull(db.pg.psql("SELECT count(*) FROM change_log WHERE group_name = 'default'"));
    REQUIRE(rows > 3);
    CHECK(db.changes->loadChanges("default", 0, rows).ok());
    CHECK(db.changes->loadChanges("default", 0, rows - 1).status().code() ==
          absl::StatusCode::kOutOfRange);
  }
  SECTION("a pruned change log is OUT_OF_RANGE") {
    db.pg.psql("DELETE FROM change_log WHERE generation = 2");
    auto cs = db.changes->loadChanges("default", 1, 100000);
    CHECK(cs.status().code() == absl::StatusCode::kOutOfRange);
  }
}

TEST_CASE("delta_pg: a real DP follows randomized changes by deltas, ending on the full hash") {
  Db db;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20; ++i) {
    db.randomWrite(rng);
  }
  cp::SyncServerOptions so;
  so.listen_address = "127.0.0.1:0";
  so.insecure = true;
  so.heartbeat_interval_ms = 200;
  auto server = cp::SyncServer::start(*db.changes, so);
  REQUIRE(server.ok());
  db.store->startListening();

  absl::Mutex mu;
  std::string applied_hash;
  dp::SyncClient::Options co;
  co.cp_address = absl::StrCat("127.0.0.1:", (*server)->port());
  co.insecure = true;
  co.version = "0.1.0";
  dp::SyncClient client(co, [&](const v1::Snapshot&, const std::string& hash,
                                config::FieldErrors*) {
    absl::MutexLock lock(&mu);
    applied_hash = hash;
    return absl::OkStatus();
  });
  REQUIRE(client.start().ok());
  REQUIRE(testing::waitFor([&] { return client.state().generation == db.read().generation(); },
                           10s));
  const uint64_t bytes_before = (*server)->stats().bytes_sent;
  const uint64_t pushes_before = (*server)->stats().pushes;
  for (int step = 0; step < 40; ++step) {
    db.randomWrite(rng);
    const v1::Snapshot full = db.read();
    const std::string want = *sync::hashSnapshot(full);
    INFO("step " << step << " generation " << full.generation());
    REQUIRE(testing::waitFor([&] { return client.state().config_hash == want; }, 10s));
  }
  const auto stats = (*server)->stats();
  // A single-entity change costs well under 2 KB on the wire (chunk messages, envelope incl.).
  const uint64_t per_push = (stats.bytes_sent - bytes_before) / (stats.pushes - pushes_before);
  WARN("average delta push: " << per_push << " bytes");
  CHECK(per_push < 2048);
  CHECK(stats.full_pushes == 1);          // only the first sync
  CHECK(stats.delta_pushes >= 35);        // then deltas (a few writes may coalesce)
  CHECK(stats.nacks == 0);
  CHECK(client.state().nacks == 0);
  client.stop();
  (*server)->shutdown();
  db.store->stop();
}

}  // namespace
}  // namespace portico
