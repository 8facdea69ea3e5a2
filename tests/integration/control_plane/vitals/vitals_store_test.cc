// control_plane/vitals (VitalsIngest's fold and write threads, vitals_store) against a real
// PostgreSQL: batches are stored exactly once per (node, instance, seq) whether repeated in
// one window or across windows, in seq order per sender (a batch above a missing one waits
// unless the DP says it dropped it), and once across two replicas given the same batch; each
// bucket adds into its 10 s, 1 min and 1 h rows (histograms element-wise, max kept) and into
// the per-node view and, summed over status codes, into the packed 10 s bucket of its route
// (read back like the summed rows); a batch naming an entity its group lacks is refused
// alone; the retention job deletes what is past each granularity's window and lets only one
// replica run per interval.
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "common/vitals/latency_bins.h"
#include "control_plane/store/migrations.h"
#include "control_plane/vitals/vitals_ingest.h"
#include "control_plane/vitals/vitals_store.h"
#include "tests/support/test_support.h"

namespace portico::cp::vitals {
namespace {

constexpr char kService[] = "00000000-0000-4000-8000-000000000001";
constexpr char kRoute[] = "00000000-0000-4000-8000-000000000002";
constexpr char kConsumer[] = "00000000-0000-4000-8000-000000000003";

struct Db {
  testing::TestPostgres pg;
  PgPool pool{pg.dsn(), 2};
  Db() {
    REQUIRE(migrateUp(pg.dsn()).ok());
    pg.psql(std::string("INSERT INTO services (group_name, id, name, entity, created_at, "
                        "updated_at) VALUES ('default', '") +
            kService + "', 's', '{}', 0, 0)");
    pg.psql(std::string("INSERT INTO routes (group_name, id, name, service_id, entity, "
                        "created_at, updated_at) VALUES ('default', '") +
            kRoute + "', 'r', '" + kService + "', '{}', 0, 0)");
    pg.psql(std::string("INSERT INTO consumers (group_name, id, entity, created_at, updated_at) "
                        "VALUES ('default', '") +
            kConsumer + "', '{\"username\":\"alice\"}', 0, 0)");
  }
  int64_t count(const std::string& sql) { return std::stoll(pg.psql(sql)); }
};

sync::v1::VitalsBucket bucket(int64_t start, int64_t requests, int64_t latency_ms, int status = 200,
                              const std::string& route = kRoute) {
  sync::v1::VitalsBucket b;
  b.set_start(start);
  b.set_service_id(kService);
  b.set_route_id(route);
  b.set_consumer_id(kConsumer);
  b.set_status_code(status);
  b.set_requests(requests);
  b.set_bytes_in(10 * requests);
  b.set_bytes_out(20 * requests);
  const size_t bin = portico::vitals::latencyBin(latency_ms);
  for (auto* h : {b.mutable_total(), b.mutable_upstream(), b.mutable_proxy()}) {
    for (size_t i = 0; i < portico::vitals::kLatencyBins; ++i) h->add_bins(i == bin ? requests : 0);
    h->set_max_ms(latency_ms);
  }
  return b;
}

sync::v1::VitalsBatch batch(uint64_t seq, std::vector<sync::v1::VitalsBucket> buckets) {
  sync::v1::VitalsBatch b;
  b.set_seq(seq);
  for (auto& x : buckets) *b.add_buckets() = std::move(x);
  return b;
}

enum class Outcome { kStored, kDuplicate, kRefused, kRetry };
struct BatchResult {
  Outcome outcome = Outcome::kRetry;
  std::string reason;
};
struct IncomingBatch {
  std::string group, node_id, instance;
  const sync::v1::VitalsBatch* batch = nullptr;
};

IngestOptions ingestOptions(Db& db) {
  IngestOptions options;
  options.dsn = db.pg.dsn();
  options.rollup_interval_s = 0;
  options.retention_interval_s = 0;
  return options;
}

// Submits `in`, in order, to a running VitalsIngest and returns each batch's answer once every
// one came: batches submitted together mostly share a window, as a fleet's flush does.
std::vector<BatchResult> submitAll(VitalsIngest& ingest, const std::vector<IncomingBatch>& in) {
  std::vector<BatchResult> results(in.size());
  absl::Mutex mu;
  size_t answered = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    ingest.submit(in[i].group, in[i].node_id, in[i].instance,
                  std::make_shared<sync::v1::VitalsBatch>(*in[i].batch),
                  [&, i](const sync::v1::VitalsAck& ack) {
                    absl::MutexLock lock(&mu);
                    using R = sync::v1::VitalsAck;
                    results[i].outcome = ack.result() == R::STORED      ? Outcome::kStored
                                         : ack.result() == R::DUPLICATE ? Outcome::kDuplicate
                                         : ack.result() == R::REFUSED   ? Outcome::kRefused
                                                                        : Outcome::kRetry;
                    results[i].reason = ack.reason();
                    answered++;
                  });
  }
  absl::MutexLock lock(&mu);
  const auto all = [&] { return answered == in.size(); };
  REQUIRE(mu.AwaitWithTimeout(absl::Condition(&all), absl::Seconds(60)));
  return results;
}

// The same through a VitalsIngest of its own (a control plane started for it, jobs off).
std::vector<BatchResult> store(Db& db, const std::vector<IncomingBatch>& in) {
  VitalsIngest ingest(ingestOptions(db));
  ingest.start();
  auto results = submitAll(ingest, in);
  ingest.stop();
  return results;
}

int64_t total(Db& db, int granularity, int64_t start, int64_t end, bool nodes = false) {
  Query q;
  q.group = "default";
  q.granularity = granularity;
  q.start = start;
  q.end = end;
  q.by_node = nodes;
  auto rows = query(db.pool, q);
  REQUIRE(rows.ok());
  int64_t n = 0;
  for (const Row& r : *rows) n += r.requests;
  return n;
}

}  // namespace

TEST_CASE("vitals store: exactly once per (node, instance, seq), rollups at every granularity") {
  Db db;
  const int64_t now = std::time(nullptr);
  const int64_t minute = now - now % 3600 + 60;  // a whole minute inside this hour
  auto b1 = batch(1, {bucket(minute, 3, 4), bucket(minute + 10, 5, 40)});
  auto b2 = batch(2, {bucket(minute + 50, 7, 4, 503)});
  // b1 twice in one write, b2 once: b1's copy is a duplicate.
  auto r = store(db, {{"default", "n1", "i1", &b1}, {"default", "n1", "i1", &b1},
                      {"default", "n1", "i1", &b2}});
  CHECK(r[0].outcome == Outcome::kStored);
  CHECK(r[1].outcome == Outcome::kDuplicate);
  CHECK(r[2].outcome == Outcome::kStored);
  // Again later (a resend after a reconnect): duplicates; another instance counts anew.
  r = store(db, {{"default", "n1", "i1", &b2}, {"default", "n1", "i2", &b1}});
  CHECK(r[0].outcome == Outcome::kDuplicate);
  CHECK(r[1].outcome == Outcome::kStored);
  CHECK(total(db, 10, minute, minute + 60) == 3 + 5 + 7 + 3 + 5);
  CHECK(total(db, 60, minute, minute + 60) == 23);
  CHECK(total(db, 3600, minute - minute % 3600, minute - minute % 3600 + 3600) == 23);
  CHECK(total(db, 60, minute, minute + 60, /*nodes=*/true) == 23);
  // Coarse rows come from the rollup job once the minute (hour) is over; until then the
  // answers above came from the 10 s rows.
  CHECK(db.count("SELECT count(*) FROM vitals_requests WHERE granularity = 60") == 0);
  auto rolled = rollUp(db.pool, minute + 2 * 3600, 60);
  REQUIRE(rolled.ok());
  CHECK(*rolled > 0);
  CHECK(db.count("SELECT count(*) FROM vitals_requests WHERE granularity = 60") == 2);  // 200, 503
  CHECK(db.count("SELECT count(*) FROM vitals_routes WHERE granularity = 3600") == 2);
  CHECK(total(db, 60, minute, minute + 60) == 23);
  CHECK(total(db, 3600, minute - minute % 3600, minute - minute % 3600 + 3600) == 23);
  // Rolling up again adds nothing twice.
  REQUIRE(rollUp(db.pool, minute + 2 * 3600, 60).ok());
  CHECK(total(db, 60, minute, minute + 60) == 23);
  CHECK(total(db, 3600, minute - minute % 3600, minute - minute % 3600 + 3600) == 23);
  // A late bucket of a rolled-up minute goes into the coarse rows at once.
  auto late = batch(3, {bucket(minute + 20, 2, 4)});
  r = store(db, {{"default", "n1", "i1", &late}});
  CHECK(r[0].outcome == Outcome::kStored);
  CHECK(total(db, 10, minute, minute + 60) == 25);
  CHECK(total(db, 60, minute, minute + 60) == 25);
  CHECK(total(db, 3600, minute - minute % 3600, minute - minute % 3600 + 3600) == 25);
  CHECK(db.count("SELECT last_seq FROM vitals_senders WHERE node_id = 'n1' AND instance = 'i1'") ==
        3);

  // The minute's 200 row: histograms added bin by bin, the max kept.
  Query q;
  q.group = "default";
  q.granularity = 60;
  q.start = minute;
  q.end = minute + 60;
  q.by_status = true;
  auto rows = query(db.pool, q);
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 2);
  const Row& ok = (*rows)[0];
  CHECK(ok.status == 200);
  CHECK(ok.requests == 18);
  CHECK(ok.total[portico::vitals::latencyBin(4)] == 8);
  CHECK(ok.total[portico::vitals::latencyBin(40)] == 10);
  CHECK(ok.max_total == 40);
  CHECK(portico::vitals::latencyQuantile(ok.total.data(), ok.max_total, 0.99) == 40);
  CHECK(ok.bytes_in == 180);
  // Filters: a route nobody used answers nothing.
  q.route = "00000000-0000-4000-8000-0000000000ff";
  rows = query(db.pool, q);
  REQUIRE(rows.ok());
  CHECK(rows->empty());
}

namespace {
// Every field query() and queryPacked() answer, in order.
std::vector<std::string> describe(const std::vector<Row>& rows) {
  std::vector<std::string> out;
  for (const Row& r : rows) {
    if (r.requests == 0) continue;
    std::string line = std::to_string(r.ts) + " " + r.service + " " + r.route + " " +
                       std::to_string(r.requests) + " " + std::to_string(r.bytes_in) + " " +
                       std::to_string(r.bytes_out) + " " + std::to_string(r.max_total) + " " +
                       std::to_string(r.max_upstream) + " " + std::to_string(r.max_proxy);
    for (const auto* h : {&r.total, &r.upstream, &r.proxy}) {
      for (int64_t v : *h) line += " " + std::to_string(v);
    }
    out.push_back(line);
  }
  return out;
}

std::vector<std::string> packed(Db& db, const Query& q) {
  std::vector<Row> rows;
  REQUIRE(queryPacked(db.pool, q, [&](const Row& r) { rows.push_back(r); }).ok());
  return describe(rows);
}

std::vector<std::string> summed(Db& db, const Query& q) {
  auto rows = query(db.pool, q);
  REQUIRE(rows.ok());
  return describe(*rows);
}
}  // namespace

TEST_CASE("vitals store: packed 10 s buckets answer like the summed rows, exactly once") {
  Db db;
  constexpr char kRoute2[] = "00000000-0000-4000-8000-0000000000a2";
  db.pg.psql(std::string("INSERT INTO routes (group_name, id, name, service_id, entity, "
                         "created_at, updated_at) VALUES ('default', '") +
             kRoute2 + "', 'r2', '" + kService + "', '{}', 0, 0)");
  const int64_t now = std::time(nullptr);
  const int64_t t0 = now - now % 10 - 600;
  auto b1 = batch(1, {bucket(t0, 3, 4), bucket(t0, 2, 40, 503), bucket(t0, 4, 9, 200, kRoute2),
                      bucket(t0 + 10, 5, 40)});
  auto b2 = batch(2, {bucket(t0, 7, 400, 404, kRoute2), bucket(t0 + 20, 1, 1)});
  // Two writes into the same buckets (read, add, write back), a duplicate that adds nothing,
  // and a second node.
  store(db, {{"default", "n1", "i1", &b1}});
  auto r = store(db, {{"default", "n1", "i1", &b1}, {"default", "n2", "i1", &b1},
                      {"default", "n1", "i1", &b2}});
  CHECK(r[0].outcome == Outcome::kDuplicate);
  CHECK(db.count("SELECT count(*) FROM vitals_route_buckets") == 3);
  Query q;
  q.group = "default";
  q.granularity = 10;
  q.start = t0 - 10;
  q.end = t0 + 60;
  for (int grouping = 0; grouping < 4; ++grouping) {
    q.by_route = grouping == 0 || grouping == 3;
    q.by_service = grouping == 1 || grouping == 3;
    INFO("grouping " << grouping);
    REQUIRE(answersFromPacked(q));
    const auto want = summed(db, q);
    CHECK(!want.empty());
    CHECK(packed(db, q) == want);
  }
  q.by_route = true;
  q.route = kRoute2;
  CHECK(packed(db, q) == summed(db, q));
  CHECK(packed(db, q).size() == 1);
  q.route.reset();
  q.service = "00000000-0000-4000-8000-0000000000ff";
  CHECK(packed(db, q).empty());
  q.service.reset();
  q.by_status = true;
  CHECK(!answersFromPacked(q));
  q.by_status = false;

  // Rebuilt from the 10 s route rows (what `portico-cp vitals pack` does): the same answer.
  const auto before = packed(db, q);
  db.pg.psql("DELETE FROM vitals_route_buckets");
  auto n = packRouteBuckets(db.pool);
  REQUIRE(n.ok());
  CHECK(*n == 3);
  CHECK(packed(db, q) == before);

  // Retention drops them with the 10 s rows.
  auto deleted = enforceRetention(db.pool, t0 + 3600 + 30, 60);
  REQUIRE(deleted.ok());
  CHECK(db.count("SELECT count(*) FROM vitals_route_buckets") == 0);
}

TEST_CASE("vitals store: a batch naming another group's or no entity is refused alone") {
  Db db;
  const int64_t now = std::time(nullptr);
  const int64_t t = now - now % 10 - 10;
  auto good = batch(1, {bucket(t, 2, 1)});
  auto bad = batch(1, {bucket(t, 2, 1), bucket(t, 4, 1, 200, "00000000-0000-4000-8000-00000000dead")});
  auto r = store(db, {{"default", "n1", "i", &good}, {"default", "n2", "i", &bad}});
  CHECK(r[0].outcome == Outcome::kStored);
  CHECK(r[1].outcome == Outcome::kRefused);
  CHECK(r[1].reason.rfind("unknown_entity: buckets.1.route_id", 0) == 0);
  CHECK(total(db, 10, t, t + 10) == 2);
  // The same entities do not exist in another group.
  db.pg.psql("INSERT INTO groups (name) VALUES ('other')");
  auto elsewhere = batch(1, {bucket(t, 2, 1)});
  r = store(db, {{"other", "n3", "i", &elsewhere}});
  CHECK(r[0].outcome == Outcome::kRefused);
}

TEST_CASE("vitals ingest: each sender's batches stored in seq order, exactly once across "
          "replicas") {
  Db db;
  const int64_t now = std::time(nullptr);
  const int64_t t = now - now % 10 - 20;
  auto withFirst = [&](uint64_t seq, uint64_t first_unacked, int64_t requests) {
    auto b = batch(seq, {bucket(t, requests, 1)});
    b.set_first_unacked_seq(first_unacked);
    return b;
  };
  VitalsIngest a(ingestOptions(db));
  a.start();
  // 2 while 1 is still held by the DP (first_unacked 1): it waits for 1.
  auto s1 = withFirst(1, 1, 1), s2 = withFirst(2, 1, 2);
  auto r = submitAll(a, {{"default", "n1", "i", &s2}});
  CHECK(r[0].outcome == Outcome::kRetry);
  CHECK(r[0].reason.find("batch 1 of this sender is not stored yet") != std::string::npos);
  r = submitAll(a, {{"default", "n1", "i", &s1}, {"default", "n1", "i", &s2}});
  CHECK(r[0].outcome == Outcome::kStored);
  CHECK(r[1].outcome == Outcome::kStored);
  // The DP dropped 3 and 4 (its buffer was full): 5, the oldest it holds, is taken.
  auto s5 = withFirst(5, 5, 4);
  r = submitAll(a, {{"default", "n1", "i", &s5}});
  CHECK(r[0].outcome == Outcome::kStored);
  // A first_unacked above the seq is garbage.
  auto bad = withFirst(6, 7, 1);
  r = submitAll(a, {{"default", "n1", "i", &bad}});
  CHECK(r[0].outcome == Outcome::kRefused);
  CHECK(r[0].reason.rfind("bad_sequence: first_unacked_seq 7", 0) == 0);
  CHECK(total(db, 10, t, t + 10) == 1 + 2 + 4);

  // Another replica stores 6 (the DP moved to it before `a` answered); then `a` gets 6 too:
  // its window conflicts, nothing is written twice, and the resend is a duplicate.
  VitalsIngest b(ingestOptions(db));
  b.start();
  auto s6 = withFirst(6, 6, 8);
  r = submitAll(b, {{"default", "n1", "i", &s6}});
  CHECK(r[0].outcome == Outcome::kStored);
  r = submitAll(a, {{"default", "n1", "i", &s6}});
  CHECK(r[0].outcome == Outcome::kRetry);
  CHECK(r[0].reason.find("another control plane") != std::string::npos);
  r = submitAll(a, {{"default", "n1", "i", &s6}});
  CHECK(r[0].outcome == Outcome::kDuplicate);
  CHECK(total(db, 10, t, t + 10) == 1 + 2 + 4 + 8);
  CHECK(db.count("SELECT last_seq FROM vitals_senders WHERE node_id = 'n1'") == 6);
  b.stop();
  a.stop();
}

TEST_CASE("vitals store: retention per granularity, one replica per interval") {
  Db db;
  const int64_t now = std::time(nullptr);
  const int64_t two_hours_ago = now - now % 3600 - 7200;
  auto old = batch(1, {bucket(two_hours_ago, 1, 1)});
  store(db, {{"default", "n1", "i", &old}});
  REQUIRE(rollUp(db.pool, now, 60).ok());
  CHECK(db.count("SELECT count(*) FROM vitals_requests") == 3);  // 10 s, 1 min, 1 h
  auto deleted = enforceRetention(db.pool, now, 60);
  REQUIRE(deleted.ok());
  // The 10 s rows (1 h) of the three tables and the packed bucket; 1 min (48 h) and 1 h stay.
  CHECK(*deleted == 4);
  CHECK(db.count("SELECT count(*) FROM vitals_requests WHERE granularity = 10") == 0);
  CHECK(db.count("SELECT count(*) FROM vitals_requests") == 2);
  // Another replica within the interval: not its turn, nothing deleted.
  auto old2 = batch(2, {bucket(two_hours_ago + 10, 1, 1)});
  store(db, {{"default", "n1", "i", &old2}});
  deleted = enforceRetention(db.pool, now + 30, 60);
  REQUIRE(deleted.ok());
  CHECK(*deleted == 0);
  // Its turn comes; and 49 hours on, the minute rows go as well.
  deleted = enforceRetention(db.pool, now + 61, 60);
  REQUIRE(deleted.ok());
  CHECK(*deleted == 4);
  deleted = enforceRetention(db.pool, now + 49 * 3600, 60);
  REQUIRE(deleted.ok());
  CHECK(db.count("SELECT count(*) FROM vitals_requests WHERE granularity = 60") == 0);
  CHECK(db.count("SELECT count(*) FROM vitals_requests WHERE granularity = 3600") == 1);
}

}  // namespace portico::cp::vitals
