// Several portico-cp processes on one PostgreSQL: concurrent `migrations up`, finish steps
// (with a fixture list, no real destructive migration), coherent replicas (a write through
// one CP reaches the other's Admin API and its DPs; latency measured), and writers racing on
// one name (exactly one 201).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "control_plane/store/migrations.h"
#include "data_plane/sync_client/sync_client.h"
#include "tests/support/test_support.h"

namespace portico::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

HttpResponse call(int port, const std::string& method, const std::string& target,
                  const std::string& body = "") {
  std::map<std::string, std::string> headers;
  if (!body.empty()) {
    headers["Content-Type"] = "application/json";
  }
  return httpRequest("127.0.0.1", port, method, target, body, headers);
}

// A serving portico-cp on free ports.
struct Cp {
  int admin_port = freePort();
  int cluster_port = freePort();
  std::unique_ptr<Process> process;
  explicit Cp(const std::string& dsn) {
    process = std::make_unique<Process>(
        binaryPath("portico-cp"),
        std::vector<std::string>{"--pg_dsn=" + dsn,
                                 "--admin_listen=127.0.0.1:" + std::to_string(admin_port),
                                 "--cluster_listen=127.0.0.1:" + std::to_string(cluster_port),
                                 "--cluster_insecure", "--cluster_heartbeat_interval_ms=500"});
    REQUIRE(waitFor([&] { return call(admin_port, "GET", "/status").status == 200; }, 15s));
  }
};

TEST_CASE("migrations: two portico-cp running `migrations up` at once apply each step once") {
  TestPostgres pg;
  for (int round = 0; round < 2; ++round) {
    if (round == 1) {
      pg.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
    }
    Process a(binaryPath("portico-cp"), {"--pg_dsn=" + pg.dsn(), "migrations", "up"});
    Process b(binaryPath("portico-cp"), {"--pg_dsn=" + pg.dsn(), "migrations", "up"});
    CHECK(a.wait(30s) == 0);
    CHECK(b.wait(30s) == 0);
    const std::string logs = a.log() + b.log();
    for (const auto& m : cp::embeddedMigrations()) {
      // The log line each process writes when it applies a step itself.
      const std::string line = std::string("[migrations] applied ") + m.name + ".up";
      const size_t first = logs.find(line);
      INFO(logs);
      CHECK(first != std::string::npos);
      CHECK(logs.find(line, first + 1) == std::string::npos);
    }
    CHECK(pg.psql("SELECT count(*) FROM schema_migrations WHERE up_applied_at IS NOT NULL") ==
          std::to_string(cp::embeddedMigrations().size()) + "\n");
  }
}

TEST_CASE("migrations: a finish step runs only after its up step, once, under the lock") {
  TestPostgres pg;
  std::vector<cp::EmbeddedMigration> list = cp::embeddedMigrations();
  list.push_back({"9000_fixture_rename",
                  "ALTER TABLE services ADD COLUMN IF NOT EXISTS fixture_new text",
                  "ALTER TABLE services DROP COLUMN IF EXISTS fixture_old"});
  list.push_back({"9001_fixture_plain", "CREATE TABLE IF NOT EXISTS fixture_t (x int)", nullptr});
  REQUIRE(cp::migrateUp(pg.dsn()).ok());  // the real ones first, as a previous release
  pg.psql("ALTER TABLE services ADD COLUMN fixture_old text");
  // finish before up: nothing (the fixture's up has not run).
  auto early = cp::migrateFinish(pg.dsn(), list);
  REQUIRE(early.ok());
  CHECK(early->empty());
  auto up = cp::migrateUp(pg.dsn(), list);
  REQUIRE(up.ok());
  CHECK(*up == std::vector<std::string>{"9000_fixture_rename", "9001_fixture_plain"});
  auto status = cp::migrationStatus(pg.dsn(), list);
  REQUIRE(status.ok());
  const auto& fixture = (*status)[status->size() - 2];
  CHECK(fixture.has_finish);
  CHECK(fixture.up_applied);
  CHECK_FALSE(fixture.finish_applied);
  // The contract part runs once, even with two migrators racing.
  std::vector<std::string> got[2];
  std::thread t1([&] { got[0] = *cp::migrateFinish(pg.dsn(), list); });
  std::thread t2([&] { got[1] = *cp::migrateFinish(pg.dsn(), list); });
  t1.join();
  t2.join();
  CHECK(got[0].size() + got[1].size() == 1);
  CHECK(pg.psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'services' "
                "AND column_name = 'fixture_old'") == "0\n");
  status = cp::migrationStatus(pg.dsn(), list);
  CHECK((*status)[status->size() - 2].finish_applied);
  CHECK(cp::migrateFinish(pg.dsn(), list)->empty());
}

TEST_CASE("replicas: a write through one CP reaches the other's Admin API and its DP fast") {
  TestPostgres pg;
  REQUIRE(cp::migrateUp(pg.dsn()).ok());
  Cp a(pg.dsn()), b(pg.dsn());

  absl::Mutex mu;
  std::map<uint64_t, Clock::time_point> applied_at;  // generation -> when the DP had it
  dp::SyncClient::Options co;
  co.cp_address = "127.0.0.1:" + std::to_string(b.cluster_port);
  co.insecure = true;
  co.version = "0.1.0";
  dp::SyncClient client(co, [&](const config::v1::Snapshot& s, const std::string&,
                                config::FieldErrors*) {
    absl::MutexLock lock(&mu);
    applied_at.emplace(s.generation(), Clock::now());
    return absl::OkStatus();
  });
  REQUIRE(client.start().ok());
  REQUIRE(waitFor([&] { return client.state().connected && client.state().applies >= 1; }, 15s));

  std::vector<double> after_commit_ms, end_to_end_ms;
  for (int i = 0; i < 30; ++i) {
    const std::string name = "svc" + std::to_string(i);
    const auto t0 = Clock::now();
    auto r = call(a.admin_port, "POST", "/services", "{\"name\":\"" + name + "\",\"host\":\"h\"}");
    const auto t1 = Clock::now();
    REQUIRE(r.status == 201);
    // Visible through the other replica's Admin API at once (same database of record).
    REQUIRE(call(b.admin_port, "GET", "/services/" + name).status == 200);
    const uint64_t want = static_cast<uint64_t>(i) + 1;
    REQUIRE(waitFor(
        [&] {
          absl::MutexLock lock(&mu);
          return applied_at.lower_bound(want) != applied_at.end();
        },
        10s));
    absl::MutexLock lock(&mu);
    const auto t2 = applied_at.lower_bound(want)->second;
    after_commit_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    end_to_end_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t0).count());
  }
  auto pct = [](std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(p * (v.size() - 1))];
  };
  // waitFor polls every 20 ms, so the figures below carry up to 20 ms of polling slack.
  WARN("replica propagation, write on CP A -> DP of CP B applied (ms): end-to-end p50 "
       << pct(end_to_end_ms, 0.5) << " p90 " << pct(end_to_end_ms, 0.9) << " max "
       << pct(end_to_end_ms, 1.0) << "; after the 201: p50 " << pct(after_commit_ms, 0.5)
       << " max " << pct(after_commit_ms, 1.0));
  CHECK(pct(end_to_end_ms, 0.5) <= 100);
  CHECK(pct(end_to_end_ms, 0.9) <= 100);
  client.stop();
}

TEST_CASE("racing writers: one name, many threads, two CPs: exactly one 201, the rest 409") {
  TestPostgres pg;
  REQUIRE(cp::migrateUp(pg.dsn()).ok());
  Cp a(pg.dsn()), b(pg.dsn());
  constexpr int kThreads = 16;
  for (int round = 0; round < 10; ++round) {
    const std::string body =
        "{\"username\":\"racer" + std::to_string(round) + "\"}";
    std::atomic<int> created{0}, conflicts{0}, other{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        while (!go.load()) {
        }
        auto r = call(t % 2 == 0 ? a.admin_port : b.admin_port, "POST", "/consumers", body);
        if (r.status == 201) {
          created++;
        } else if (r.status == 409 &&
                   json::parse(r.body)["name"] == "unique constraint violation") {
          conflicts++;
        } else {
          other++;
        }
      });
    }
    go = true;
    for (auto& t : threads) {
      t.join();
    }
    CHECK(created.load() == 1);
    CHECK(conflicts.load() == kThreads - 1);
    CHECK(other.load() == 0);
  }
  CHECK(pg.psql("SELECT count(*) FROM consumers") == "10\n");
  // Same for control-plane names.
  std::atomic<int> created{0}, conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto r = call(t % 2 == 0 ? a.admin_port : b.admin_port, "POST", "/control-planes",
                    R"({"name":"race"})");
      (r.status == 201 ? created : conflicts)++;
      CHECK((r.status == 201 || r.status == 409));
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  CHECK(created.load() == 1);
  CHECK(conflicts.load() == kThreads - 1);
}


// The value of the first sample whose line starts with `prefix` (name, or name{labels...}),
// or -1 if there is none.
double metric(const std::string& text, const std::string& prefix) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) {
      end = text.size();
    }
    const std::string line = text.substr(pos, end - pos);
    if (line.rfind(prefix, 0) == 0 && line.size() > prefix.size() &&
        (line[prefix.size()] == ' ' || line[prefix.size()] == '{' || prefix.back() == '}' ||
         prefix.back() == ',')) {
      return std::stod(line.substr(line.rfind(' ') + 1));
    }
    pos = end + 1;
  }
  return -1;
}

TEST_CASE("metrics: GET /metrics shows sync and transport counters and Kong's per-DP gauges") {
  TestPostgres pg;
  REQUIRE(cp::migrateUp(pg.dsn()).ok());
  Cp cp(pg.dsn());
  dp::SyncClient::Options co;
  co.cp_address = "127.0.0.1:" + std::to_string(cp.cluster_port);
  co.insecure = true;
  co.version = "0.1.0";
  co.node_id = "6f1c1c8e-0000-4000-8000-000000000001";
  co.hostname = "dp-metrics";
  dp::SyncClient client(co, [](const config::v1::Snapshot&, const std::string&,
                               config::FieldErrors*) { return absl::OkStatus(); });
  REQUIRE(call(cp.admin_port, "POST", "/services", R"({"name":"m1","host":"h"})").status == 201);
  REQUIRE(client.start().ok());
  REQUIRE(waitFor([&] { return client.state().connected && client.state().applies >= 1; }, 15s));

  HttpResponse r;
  REQUIRE(waitFor(
      [&] {
        r = call(cp.admin_port, "GET", "/metrics");
        return r.status == 200 && metric(r.body, "portico_cp_sync_acks_total") >= 1;
      },
      10s));
  CHECK(r.headers["content-type"].rfind("text/plain; version=0.0.4", 0) == 0);
  CHECK(metric(r.body, "kong_datastore_reachable") == 1);
  CHECK(metric(r.body, "portico_cp_admin_requests_total") >= 2);
  CHECK(metric(r.body, "portico_cp_sync_streams_active") == 1);
  CHECK(metric(r.body, "portico_cp_cluster_connections_active") == 1);
  CHECK(metric(r.body, "portico_cp_sync_encodes_total") >= 1);
  CHECK(metric(r.body, "portico_cp_sync_pushes_total{kind=\"full\"}") >= 1);
  CHECK(metric(r.body, "portico_cp_sync_bytes_sent_total") > 0);
  CHECK(metric(r.body, "portico_cp_change_log_pruned_rows_total") == 0);
  const std::string node = "node_id=\"" + co.node_id + "\",hostname=\"dp-metrics\"";
  CHECK(metric(r.body, "kong_data_plane_version_compatible{" + node + ",") == 1);
  const double last_seen = metric(r.body, "kong_data_plane_last_seen{" + node + ",");
  CHECK(std::abs(last_seen - static_cast<double>(absl::ToUnixSeconds(absl::Now()))) < 60);
  CHECK(metric(r.body, "kong_data_plane_config_hash{" + node + ",") > 0);
  CHECK(metric(r.body, "portico_cp_data_planes{sync_status=\"normal\",connected=\"true\"}") == 1);
  CHECK(call(cp.admin_port, "POST", "/metrics").status == 405);

  client.stop();
  REQUIRE(waitFor(
      [&] {
        r = call(cp.admin_port, "GET", "/metrics");
        return metric(r.body, "portico_cp_sync_streams_active") == 0;
      },
      10s));
  CHECK(metric(r.body, "portico_cp_data_planes{sync_status=\"normal\",connected=\"false\"}") == 1);
}

}  // namespace
}  // namespace portico::testing
