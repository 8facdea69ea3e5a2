// Group commit in PgConfigStore::writeJson against a real PostgreSQL: concurrent writes of a
// group share transactions, yet each request gets its own exact answer (conflicts inside a
// batch are undone alone), every success is durable and logged under a generation greater
// than the writer's previous one, and every generation has its change_log rows.
#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/config/entities.h"
#include "control_plane/store/migrations.h"
#include "control_plane/store/pg_store_impl.h"
#include "tests/support/test_support.h"

namespace portico::cp {
namespace {

using nlohmann::json;

json processed(const std::string& type, const json& input, const std::string& id) {
  json out;
  const config::FieldErrors errors = config::processEntityJson(type, input, &out);
  REQUIRE(errors.empty());
  out["id"] = id;
  return out;
}

std::string uuidFor(int n) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "00000000-0000-4000-8000-%012d", n);
  return buf;
}

struct Outcome {
  int thread;
  int step;
  std::string kind;  // "shared", "own", "same_id", "bad_fk"
  std::string key;   // shared name / id the case races for
  std::string id;
  absl::Status status;
  uint64_t generation = 0;
};

TEST_CASE("group commit: concurrent creates, some conflicting, each get their own answer") {
  testing::TestPostgres pg;
  REQUIRE(migrateUp(pg.dsn()).ok());
  auto opened = PgConfigStore::open({pg.dsn(), 4});
  REQUIRE(opened.ok());
  PgConfigStore& store = **opened;
  std::mutex notified_mu;
  std::set<uint64_t> notified;
  store.setChangeCallback([&](const std::string& group, uint64_t generation) {
    if (group == "default") {
      std::lock_guard<std::mutex> lock(notified_mu);
      notified.insert(generation);
    }
  });
  store.startListening();
  const uint64_t initial = *store.currentGeneration("default");

  constexpr int kThreads = 12;
  constexpr int kSteps = 20;
  std::mutex mu;
  std::vector<Outcome> outcomes;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kSteps; ++i) {
        Outcome o{t, i, "", "", "", absl::OkStatus(), 0};
        std::string type = "services";
        json input;
        o.id = uuidFor(1000 * (t + 1) + i);
        switch (i % 4) {
          case 0:  // every thread races for the same name: exactly one wins
            o.kind = "shared";
            o.key = absl::StrCat("shared-", i);
            input = {{"name", o.key}, {"host", "h.test"}};
            break;
          case 1:  // every thread races for the same id
            o.kind = "same_id";
            o.id = uuidFor(i);
            o.key = o.id;
            input = {{"name", absl::StrCat("t", t, "-", i)}, {"host", "h.test"}};
            break;
          case 2:  // no conflict
            o.kind = "own";
            input = {{"name", absl::StrCat("t", t, "-", i)}, {"host", "h.test"}};
            break;
          default:  // a route whose service does not exist
            o.kind = "bad_fk";
            type = "routes";
            input = {{"name", absl::StrCat("r", t, "-", i)},
                     {"paths", {"/x"}},
                     {"service", {{"id", uuidFor(999999)}}}};
            break;
        }
        auto written = store.writeJson("default", type, processed(type, input, o.id),
                                       WriteMode::kCreate);
        o.status = written.status();
        if (written.ok()) {
          o.generation = written->generation;
          o.id = (*written).entity["id"].get<std::string>();
        }
        std::lock_guard<std::mutex> lock(mu);
        outcomes.push_back(o);
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  REQUIRE(outcomes.size() == static_cast<size_t>(kThreads * kSteps));

  std::map<std::string, int> winners;  // key -> successes
  std::map<int, uint64_t> last_generation;
  std::set<std::string> written_ids;
  uint64_t max_generation = 0;
  std::sort(outcomes.begin(), outcomes.end(), [](const Outcome& a, const Outcome& b) {
    return a.thread != b.thread ? a.thread < b.thread : a.step < b.step;
  });
  for (const Outcome& o : outcomes) {
    INFO("thread " << o.thread << " step " << o.step << " " << o.kind << ": " << o.status);
    if (o.kind == "own") {
      REQUIRE(o.status.ok());
    } else if (o.kind == "bad_fk") {
      REQUIRE(absl::IsFailedPrecondition(o.status));
      REQUIRE(json::parse(std::string(o.status.message())) ==
              json{{"foreign_key", "service"}, {"id", uuidFor(999999)}, {"reference", "services"}});
    } else if (!o.status.ok()) {
      REQUIRE(absl::IsAlreadyExists(o.status));
      const json detail = json::parse(std::string(o.status.message()));
      if (o.kind == "shared") {
        REQUIRE(detail == json{{"unique", {{"name", o.key}}}});
      } else {
        REQUIRE(detail == json{{"primary_key", o.key}});
      }
    }
    if (o.status.ok()) {
      ++winners[o.kind == "own" ? o.id : o.key];
      // A writer's next write is covered by a greater generation.
      REQUIRE(o.generation > initial);
      REQUIRE(o.generation > last_generation[o.thread]);
      last_generation[o.thread] = o.generation;
      max_generation = std::max(max_generation, o.generation);
      written_ids.insert(o.id);
    }
  }
  for (int i = 0; i < kSteps; ++i) {
    if (i % 4 == 0) {
      CHECK(winners[absl::StrCat("shared-", i)] == 1);
    } else if (i % 4 == 1) {
      CHECK(winners[uuidFor(i)] == 1);
    }
  }
  // No lost and no half-applied write: exactly the successes are stored, each logged once
  // under the generation its writer was told.
  REQUIRE(pg.psql("SELECT count(*) FROM routes") == "0\n");
  REQUIRE(pg.psql("SELECT count(*) FROM services") == std::to_string(written_ids.size()) + "\n");
  for (const Outcome& o : outcomes) {
    if (o.status.ok()) {
      REQUIRE(store.getJson("default", "services", o.id).ok());
      REQUIRE(pg.psql("SELECT generation FROM change_log WHERE entity_id = '" + o.id + "'") ==
              std::to_string(o.generation) + "\n");
    }
  }
  // Every generation of the range has log rows (what deltas check), and ends where the group is.
  REQUIRE(*store.currentGeneration("default") == max_generation);
  REQUIRE(pg.psql("SELECT count(DISTINCT generation) FROM change_log WHERE generation > " +
                  std::to_string(initial)) ==
          std::to_string(max_generation - initial) + "\n");
  // Concurrent writers did share transactions.
  const PgConfigStore::WriteBatchStats stats = store.writeBatchStats();
  CHECK(stats.writes == outcomes.size());
  CHECK(stats.batches < stats.writes);
  // One NOTIFY per committed generation reaches the listener; the last one at least.
  for (int i = 0; i < 100; ++i) {
    {
      std::lock_guard<std::mutex> lock(notified_mu);
      if (notified.count(max_generation) != 0) {
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::lock_guard<std::mutex> lock(notified_mu);
  CHECK(notified.count(max_generation) == 1);
  store.stop();
}

TEST_CASE("group commit: concurrent deletes share batches and each get their own answer") {
  testing::TestPostgres pg;
  REQUIRE(migrateUp(pg.dsn()).ok());
  auto opened = PgConfigStore::open({pg.dsn(), 4});
  REQUIRE(opened.ok());
  PgConfigStore& store = **opened;
  constexpr int kThreads = 8;
  constexpr int kEach = 15;
  // Per thread and step: a service with one route, and a plugin on the route (cascades).
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kEach; ++i) {
      const int n = 1000 * (t + 1) + i;
      REQUIRE(store.writeJson("default", "services",
                              processed("services", {{"name", absl::StrCat("s", n)},
                                                     {"host", "h.test"}}, uuidFor(n)),
                              WriteMode::kCreate).ok());
      REQUIRE(store.writeJson("default", "routes",
                              processed("routes", {{"name", absl::StrCat("r", n)},
                                                   {"paths", {"/x"}},
                                                   {"service", {{"id", uuidFor(n)}}}},
                                        uuidFor(n + 500)),
                              WriteMode::kCreate).ok());
      REQUIRE(store.writeJson("default", "plugins",
                              processed("plugins", {{"name", "cors"},
                                                    {"route", {{"id", uuidFor(n + 500)}}}},
                                        uuidFor(n + 700)),
                              WriteMode::kCreate).ok());
    }
  }
  const uint64_t initial = *store.currentGeneration("default");
  const PgConfigStore::WriteBatchStats before = store.writeBatchStats();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const int n = 1000 * (t + 1) + i;
        // The service first: its route still holds it (Kong refuses, nothing is deleted).
        auto refused = store.deleteJson("default", "services", uuidFor(n));
        if (!absl::IsFailedPrecondition(refused.status()) ||
            json::parse(std::string(refused.status().message())) !=
                json{{"referenced_by", "routes"}}) {
          ++failures;
        }
        // The route, taking its plugin with it; then the service; then nothing left.
        auto route = store.deleteJson("default", "routes", uuidFor(n + 500));
        auto service = store.deleteJson("default", "services", uuidFor(n));
        auto again = store.deleteJson("default", "services", uuidFor(n));
        if (!route.ok() || !route->has_value() || **route <= initial || !service.ok() ||
            !service->has_value() || **service <= **route || !again.ok() ||
            again->has_value()) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  CHECK(failures == 0);
  CHECK(pg.psql("SELECT count(*) FROM services") == "0\n");
  CHECK(pg.psql("SELECT count(*) FROM routes") == "0\n");
  CHECK(pg.psql("SELECT count(*) FROM plugins") == "0\n");
  // Each deleted entity logged once, the cascaded plugins included.
  CHECK(pg.psql("SELECT count(*) FROM change_log WHERE op = 'delete' AND generation > " +
                std::to_string(initial)) ==
        std::to_string(3 * kThreads * kEach) + "\n");
  const PgConfigStore::WriteBatchStats after = store.writeBatchStats();
  CHECK(after.writes - before.writes == static_cast<uint64_t>(4 * kThreads * kEach));
  CHECK(after.batches - before.batches < after.writes - before.writes);
  store.stop();
}

}  // namespace
}  // namespace portico::cp
