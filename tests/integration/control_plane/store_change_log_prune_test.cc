// change_log retention against a real PostgreSQL: pruneChangeLog() keeps exactly the rows of
// each group's newest N generations, deletes in bounded batches of whole generations, leaves
// every delta inside the window intact (through PgChangeLogStore), yields to another
// replica's prune lock and answers a status when PostgreSQL is unreachable; ChangeLogPruner
// runs rounds on its own thread, survives a missing database and stops promptly.
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/sync/delta.h"
#include "control_plane/store/change_log_pruner.h"
#include "control_plane/store/migrations.h"
#include "control_plane/store/pg_changes.h"
#include "control_plane/store/pg_store_impl.h"
#include "tests/support/test_support.h"

namespace portico::cp {
namespace {

using namespace std::chrono_literals;
namespace v1 = config::v1;

// A deterministic UUID per (group index, entity number).
std::string serviceId(int group, int n) {
  return absl::StrFormat("00000000-0000-4000-8000-%04x%08x", group, n);
}

struct Db {
  testing::TestPostgres pg;
  std::unique_ptr<PgConfigStore> store;
  std::unique_ptr<PgChangeLogStore> changes;
  PgPool pool{pg.dsn(), 1};

  Db() {
    REQUIRE(migrateUp(pg.dsn()).ok());
    auto s = PgConfigStore::open({pg.dsn(), 2});
    REQUIRE(s.ok());
    store = std::move(*s);
    changes = std::make_unique<PgChangeLogStore>(*store, pg.dsn());
  }

  void createGroup(const std::string& name) {
    GroupRecord g;
    g.name = name;
    REQUIRE(store->createGroup(g).ok());
  }

  // One Admin-style write (one generation, one change_log row); returns the generation.
  uint64_t upsertService(const std::string& group, const std::string& id, int port) {
    v1::Service s;
    s.set_id(id);
    s.set_name(absl::StrCat("svc-", id.substr(24)));
    s.set_protocol("http");
    s.set_host("upstream.internal");
    s.set_port(port);
    s.set_retries(5);
    s.set_connect_timeout(60000);
    s.set_write_timeout(60000);
    s.set_read_timeout(60000);
    s.set_enabled(true);
    auto w = store->upsertService(group, s);
    REQUIRE(w.ok());
    return w->generation;
  }

  std::string query(const std::string& sql) const {
    std::string out = pg.psql(sql);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
      out.pop_back();
    }
    return out;
  }
  uint64_t count(const std::string& where) const {
    return std::stoull(query("SELECT count(*) FROM change_log WHERE " + where));
  }
  // The group's rows of generations above `after`, as their sequence numbers.
  std::string seqsAfter(const std::string& group, uint64_t after) const {
    return query(absl::StrCat("SELECT string_agg(seq::text, ',' ORDER BY seq) FROM change_log "
                              "WHERE group_name = '", group, "' AND generation > ", after));
  }

  v1::Snapshot read(const std::string& group) {
    auto s = store->loadSnapshot(group);
    REQUIRE(s.ok());
    sync::canonicalize(&*s);
    return *s;
  }
};

// A backlog written straight in SQL (writing it through the store takes minutes): `groups`
// at `generations`, each generation with `rows_per_generation` rows.
void syntheticBacklog(Db& db, const std::string& group, uint64_t generations,
                      int rows_per_generation) {
  db.pg.psql(absl::StrCat(
      "INSERT INTO change_log (group_name, generation, entity_type, entity_id, op) "
      "SELECT '", group, "', g, 'services', gen_random_uuid(), 'upsert' "
      "FROM generate_series(1, ", generations, ") g, generate_series(1, ", rows_per_generation,
      ") r; UPDATE groups SET generation = ", generations, " WHERE name = '", group,
      "'; ANALYZE change_log"));
}

TEST_CASE("change_log prune: keeps exactly the newest N generations of each group") {
  Db db;
  constexpr uint64_t kKeep = 20;
  db.createGroup("b");
  db.createGroup("c");
  uint64_t gen_default = 0, gen_b = 0, gen_c = 0;
  for (int i = 0; i < static_cast<int>(kKeep) + 15; ++i) {  // updates of 5 services
    gen_default = db.upsertService("default", serviceId(0, i % 5), 1000 + i);
  }
  for (int i = 0; i < static_cast<int>(kKeep) + 3; ++i) {
    gen_b = db.upsertService("b", serviceId(1, i), 80);
  }
  for (int i = 0; i < 5; ++i) {  // fewer generations than kept: nothing to prune
    gen_c = db.upsertService("c", serviceId(2, i), 80);
  }
  REQUIRE(gen_default == kKeep + 15);
  REQUIRE(gen_b == kKeep + 3);
  const std::string kept_default = db.seqsAfter("default", gen_default - kKeep);
  const std::string kept_b = db.seqsAfter("b", gen_b - kKeep);
  const std::string kept_c = db.seqsAfter("c", 0);
  REQUIRE(db.count("true") == gen_default + gen_b + gen_c);

  // One group alone leaves the others untouched.
  auto n = pruneChangeLog(db.pool, "b", kKeep, 10000);
  REQUIRE(n.ok());
  CHECK(*n == 3);
  CHECK(db.count("group_name = 'default'") == gen_default);

  // Then every group; a second call finds nothing.
  n = pruneChangeLog(db.pool, "", kKeep, 10000);
  REQUIRE(n.ok());
  CHECK(*n == 15);
  n = pruneChangeLog(db.pool, "", kKeep, 10000);
  REQUIRE(n.ok());
  CHECK(*n == 0);

  // Exactly the rows of generations (current - N, current], the very same rows.
  CHECK(db.seqsAfter("default", 0) == kept_default);
  CHECK(db.seqsAfter("b", 0) == kept_b);
  CHECK(db.seqsAfter("c", 0) == kept_c);
  CHECK(db.query("SELECT min(generation), max(generation), count(DISTINCT generation) "
                 "FROM change_log WHERE group_name = 'default'") == "16|35|20");
  CHECK(db.query("SELECT min(generation), max(generation), count(DISTINCT generation) "
                 "FROM change_log WHERE group_name = 'b'") == "4|23|20");
  CHECK(db.count("group_name = 'c'") == 5);
}

TEST_CASE("change_log prune: deltas from inside the window still read correctly") {
  Db db;
  constexpr uint64_t kWindow = 16;  // the sync server's delta window = the retention here
  std::map<uint64_t, v1::Snapshot> history;
  history[0] = db.read("default");
  uint64_t current = 0;
  for (int i = 0; i < 40; ++i) {
    if (i % 7 == 6) {
      auto d = db.store->deleteService("default", serviceId(0, (i - 3) % 11));
      REQUIRE(d.ok());
      REQUIRE(d->has_value());
      current = **d;
    } else {
      current = db.upsertService("default", serviceId(0, i % 11), 2000 + i);
    }
    history[current] = db.read("default");
  }
  REQUIRE(current == 40);

  auto n = pruneChangeLog(db.pool, "", kWindow, 10000);
  REQUIRE(n.ok());
  CHECK(*n == current - kWindow);

  const v1::Snapshot full = db.read("default");
  const std::string want = *sync::hashSnapshot(full);
  for (uint64_t base = current - kWindow; base < current; ++base) {
    INFO("delta from generation " << base);
    auto cs = db.changes->loadChanges("default", base, 100000);
    REQUIRE(cs.ok());
    REQUIRE(cs->generation == current);
    sync::v1::SnapshotDelta delta;
    delta.set_base_generation(base);
    delta.set_generation(cs->generation);
    *delta.mutable_upserts() = cs->upserts;
    sync::canonicalize(delta.mutable_upserts());
    for (const auto& [type, id] : cs->deletes) {
      sync::v1::EntityRef* ref = delta.add_deletes();
      ref->set_entity_type(type);
      ref->set_entity_id(id);
    }
    v1::Snapshot dp = history.at(base);
    REQUIRE(sync::applyDelta(&dp, delta).ok());
    CHECK(*sync::hashSnapshot(dp) == want);
  }
  // One generation further back is gone: the sync server falls back to a full snapshot.
  auto outside = db.changes->loadChanges("default", current - kWindow - 1, 100000);
  CHECK(outside.status().code() == absl::StatusCode::kOutOfRange);
}

TEST_CASE("change_log prune: bounded batches of whole generations until none is left") {
  Db db;
  constexpr uint64_t kKeep = 10;
  syntheticBacklog(db, "default", 100, 3);  // 300 rows, 270 to prune
  uint64_t total = 0;
  int calls = 0;
  for (;;) {
    auto n = pruneChangeLog(db.pool, "", kKeep, 7);
    REQUIRE(n.ok());
    ++calls;
    REQUIRE(calls < 100);
    // 7 rows, plus the rest of the generation the 7th row belongs to.
    CHECK(*n <= 9);
    total += *n;
    // A generation goes whole, oldest first: what is left is one contiguous tail.
    CHECK(db.query("SELECT count(*) FROM (SELECT generation FROM change_log GROUP BY "
                   "generation HAVING count(*) <> 3) partial") == "0");
    CHECK(db.query("SELECT max(generation) - min(generation) + 1 = count(DISTINCT generation) "
                   "FROM change_log") == "t");
    if (*n == 0) {
      break;
    }
  }
  CHECK(total == 270);
  CHECK(calls == 31);  // 30 batches of 9 rows (3 whole generations), then nothing
  CHECK(db.query("SELECT min(generation), count(*) FROM change_log") == "91|30");
  CHECK(pruneChangeLog(db.pool, "", kKeep, 0).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("change_log prune: a round works through a 100,000-row backlog") {
  Db db;
  syntheticBacklog(db, "default", 21000, 5);  // 105,000 rows; the newest 1,000 gen. stay
  // And 50 small groups with nothing to prune: with them, a range join of change_log on
  // (group_name, generation) is planned as a sequential scan of the table.
  db.pg.psql("INSERT INTO groups (name, generation) SELECT 'g' || i, 200 "
             "FROM generate_series(1, 50) i; "
             "INSERT INTO change_log (group_name, generation, entity_type, entity_id, op) "
             "SELECT 'g' || i, g, 'services', gen_random_uuid(), 'upsert' "
             "FROM generate_series(1, 50) i, generate_series(1, 200) g; ANALYZE change_log");
  ChangeLogPrunerOptions o;
  o.dsn = db.pg.dsn();
  o.keep_generations = 1000;
  o.batch_limit = 10000;
  // Table statistics reach the server when a backend ends: the migrations' (whose index
  // builds count as sequential scans) long before, the backlog's psql sessions now.
  auto stats = [&] {
    return db.query("SELECT n_tup_ins, seq_scan, idx_scan FROM pg_stat_user_tables "
                    "WHERE relname = 'change_log'");
  };
  std::string before;
  REQUIRE(testing::waitFor([&] { return (before = stats()).rfind("115000|", 0) == 0; }, 10s));
  const std::vector<std::string> base = absl::StrSplit(before, '|');
  std::chrono::steady_clock::duration elapsed;
  {
    ChangeLogPruner pruner(o);
    const auto start = std::chrono::steady_clock::now();
    auto n = pruner.runRound();
    elapsed = std::chrono::steady_clock::now() - start;
    REQUIRE(n.ok());
    CHECK(*n == 100000);
    CHECK(pruner.stats().batches == 11);  // 10 full batches, then one that finds nothing
    CHECK(pruner.stats().rows_deleted == 100000);
  }  // its connection closes: the server flushes that backend's table statistics
  std::fprintf(stderr, "change_log prune: 100,000 rows in %lld ms (batches of 10,000)\n",
               static_cast<long long>(
                   std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()));

  // Every batch reached its rows through indexes: a sequential scan would read the whole
  // table per batch, however few rows are left to prune.
  std::vector<std::string> after;
  CHECK(testing::waitFor(
      [&] {
        after = absl::StrSplit(stats(), '|');
        return after.size() == 3 && std::stoull(after[2]) >= std::stoull(base[2]) + 11;
      },
      10s));
  CHECK(after[1] == base[1]);  // seq_scan
  CHECK(db.query("SELECT min(generation), max(generation), count(*) FROM change_log "
                 "WHERE group_name = 'default'") == "20001|21000|5000");
  CHECK(db.count("group_name <> 'default'") == 10000);
}

TEST_CASE("change_log prune: another replica's prune lock makes a batch yield") {
  Db db;
  syntheticBacklog(db, "default", 50, 1);
  pqxx::connection other(db.pg.dsn());
  pqxx::work holder(other);
  holder.exec_params("SELECT pg_advisory_xact_lock($1)", kChangeLogPruneLockKey);

  auto n = pruneChangeLog(db.pool, "", 10, 100);
  CHECK(n.status().code() == absl::StatusCode::kAborted);
  ChangeLogPrunerOptions o;
  o.dsn = db.pg.dsn();
  o.keep_generations = 10;
  ChangeLogPruner pruner(o);
  auto round = pruner.runRound();  // the other replica's round does the work
  REQUIRE(round.ok());
  CHECK(*round == 0);
  CHECK(pruner.stats().failures == 0);
  CHECK(db.count("true") == 50);

  holder.abort();
  round = pruner.runRound();
  REQUIRE(round.ok());
  CHECK(*round == 40);
}

TEST_CASE("change_log prune: retention below the delta window is raised to it") {
  ChangeLogPrunerOptions o;
  o.dsn = "host=127.0.0.1 port=1";  // never connected: no round runs
  o.keep_generations = 10;
  o.min_keep_generations = 128;
  CHECK(ChangeLogPruner(o).keepGenerations() == 128);
  o.keep_generations = 1000;
  CHECK(ChangeLogPruner(o).keepGenerations() == 1000);
}

TEST_CASE("change_log prune: unreachable PostgreSQL is a status, and the pruner carries on") {
  const std::string dsn =
      absl::StrCat("host=127.0.0.1 port=", testing::freePort(), " dbname=none user=postgres "
                   "connect_timeout=2");
  PgPool pool(dsn, 1);
  auto n = pruneChangeLog(pool, "", 1000, 10000);
  CHECK(n.status().code() == absl::StatusCode::kUnavailable);
  CHECK(std::string(n.status().message()).find("cannot connect to PostgreSQL at 127.0.0.1:") ==
        0);

  ChangeLogPrunerOptions o;
  o.dsn = dsn;
  o.first_round_after = absl::ZeroDuration();
  o.interval = absl::Milliseconds(10);
  ChangeLogPruner pruner(o);
  pruner.start();
  CHECK(testing::waitFor([&] { return pruner.stats().failures >= 3; }, 10s));
  pruner.stop();
  CHECK(pruner.stats().rows_deleted == 0);
}

TEST_CASE("change_log prune: the pruner thread runs a first round soon and stops promptly") {
  Db db;
  syntheticBacklog(db, "default", 300, 2);
  ChangeLogPrunerOptions o;
  o.dsn = db.pg.dsn();
  o.keep_generations = 100;
  o.first_round_after = absl::ZeroDuration();
  o.interval = absl::Hours(1);
  ChangeLogPruner pruner(o);
  pruner.start();
  REQUIRE(testing::waitFor([&] { return pruner.stats().rounds == 1 &&
                                        pruner.stats().rows_deleted == 400; }, 10s));
  // Waiting for the next round (an hour away) must not delay shutdown.
  const auto start = std::chrono::steady_clock::now();
  pruner.stop();
  CHECK(std::chrono::steady_clock::now() - start < 2s);
  CHECK(db.count("true") == 200);
}

}  // namespace
}  // namespace portico::cp
