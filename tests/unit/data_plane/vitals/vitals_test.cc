// Vitals on the data plane: WorkerVitals' buckets (keys, counters, histograms, closing on the
// 10 s boundary, the closed-bucket cap), the Collector (merge across workers, top-N consumer
// folding into "*", batch splitting and numbering, acknowledge, the bounded queue) and the
// shared latency bins. Time is passed in explicitly, so every case is deterministic.
#include "data_plane/vitals/vitals.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "common/vitals/latency_bins.h"

namespace portico::dp::vitals {
namespace {

using portico::vitals::kLatencyBins;
using portico::vitals::kLatencyBoundsMs;
using portico::vitals::latencyBin;
using portico::vitals::latencyQuantile;

Sample sample(std::string_view service, std::string_view route, std::string_view consumer,
              int status, uint64_t bytes_in = 0, uint64_t bytes_out = 0, int64_t total_ms = 0,
              int64_t upstream_ms = -1) {
  Sample s;
  s.service = service;
  s.route = route;
  s.consumer = consumer;
  s.status = status;
  s.bytes_in = bytes_in;
  s.bytes_out = bytes_out;
  s.total_ms = total_ms;
  s.upstream_ms = upstream_ms;
  return s;
}

const Cell* findCell(const CellMap& cells, std::string_view service, std::string_view route,
                     std::string_view consumer, int status) {
  auto it = cells.find(KeyView{service, route, consumer, status});
  return it == cells.end() ? nullptr : &it->second;
}

int64_t sum(const LatencyCounts& bins) {
  int64_t n = 0;
  for (int64_t b : bins) n += b;
  return n;
}

// (start, service, route, consumer, status): the identity of one reported bucket.
using BucketId = std::tuple<int64_t, std::string, std::string, std::string, int>;

BucketId idOf(const sync::v1::VitalsBucket& b) {
  return {b.start(), b.service_id(), b.route_id(), b.consumer_id(), b.status_code()};
}

// Every bucket of every pending batch, by identity; a duplicate identity fails the test.
std::map<BucketId, sync::v1::VitalsBucket> pendingBuckets(const Collector& c) {
  std::map<BucketId, sync::v1::VitalsBucket> out;
  for (const auto& batch : c.pending()) {
    for (const auto& b : batch->buckets()) {
      const bool inserted = out.emplace(idOf(b), b).second;
      CHECK(inserted);
    }
  }
  return out;
}

std::vector<uint64_t> pendingSeqs(const Collector& c) {
  std::vector<uint64_t> seqs;
  for (const auto& batch : c.pending()) seqs.push_back(batch->seq());
  return seqs;
}

std::vector<int64_t> binsOf(const sync::v1::LatencyHistogram& h) {
  return {h.bins().begin(), h.bins().end()};
}

std::vector<int64_t> binsOf(const LatencyCounts& bins) { return {bins.begin(), bins.end()}; }

// ---------------------------------------------------------------------------------------------
// Latency bins

TEST_CASE("vitals: latencyBin places values on inclusive upper bounds") {
  STATIC_REQUIRE(kLatencyBins == 16);
  CHECK(latencyBin(0) == 0);
  CHECK(latencyBin(1) == 0);
  CHECK(latencyBin(2) == 1);
  CHECK(latencyBin(3) == 2);
  CHECK(latencyBin(5) == 2);
  CHECK(latencyBin(6) == 3);
  CHECK(latencyBin(100) == 6);
  CHECK(latencyBin(101) == 7);
  CHECK(latencyBin(60000) == 14);
  CHECK(latencyBin(60001) == 15);  // the last bin takes everything above
  CHECK(latencyBin(int64_t{1} << 40) == 15);
  for (size_t i = 0; i < kLatencyBoundsMs.size(); ++i) {
    CAPTURE(i);
    CHECK(latencyBin(kLatencyBoundsMs[i]) == i);
    CHECK(latencyBin(kLatencyBoundsMs[i] + 1) == i + 1);
  }
}

TEST_CASE("vitals: latencyQuantile") {
  SECTION("no samples reads 0") {
    LatencyCounts bins{};
    CHECK(latencyQuantile(bins.data(), 0, 0.5) == 0);
    CHECK(latencyQuantile(bins.data(), 1234, 0.99) == 0);
  }
  SECTION("a single sample is capped at the max") {
    LatencyCounts bins{};
    bins[latencyBin(3)] = 1;  // bin (2, 5]
    CHECK(latencyQuantile(bins.data(), 3, 0.5) == 3);
    CHECK(latencyQuantile(bins.data(), 3, 0.99) == 3);
    CHECK(latencyQuantile(bins.data(), 3, 1.0) == 3);
    CHECK(latencyQuantile(bins.data(), 3, 0.0001) == 3);  // rank clamps to 1
  }
  SECTION("a sample past the last bound reads the max") {
    LatencyCounts bins{};
    bins[latencyBin(70000)] = 1;
    CHECK(latencyQuantile(bins.data(), 70000, 0.5) == 70000);
  }
  SECTION("p50/p90/p95/p99/p100 on a known distribution") {
    // 90 x 10 ms, 9 x 100 ms, 1 x 1500 ms: 100 samples.
    LatencyCounts bins{};
    bins[latencyBin(10)] += 90;
    bins[latencyBin(100)] += 9;
    bins[latencyBin(1500)] += 1;
    const int64_t max_ms = 1500;
    CHECK(latencyQuantile(bins.data(), max_ms, 0.5) == 10);
    CHECK(latencyQuantile(bins.data(), max_ms, 0.9) == 10);    // rank 90: still the 10 ms bin
    CHECK(latencyQuantile(bins.data(), max_ms, 0.91) == 100);  // rank 91
    CHECK(latencyQuantile(bins.data(), max_ms, 0.95) == 100);
    CHECK(latencyQuantile(bins.data(), max_ms, 0.99) == 100);  // rank 99
    CHECK(latencyQuantile(bins.data(), max_ms, 1.0) == 1500);  // bin bound 2000, capped at max
  }
  SECTION("bin bounds are upper bounds, not the samples") {
    // 3 x 7 ms (bin (5,10]) and 1 x 40 ms (bin (20,50]), max 40.
    LatencyCounts bins{};
    bins[latencyBin(7)] += 3;
    bins[latencyBin(40)] += 1;
    CHECK(latencyQuantile(bins.data(), 40, 0.5) == 10);
    CHECK(latencyQuantile(bins.data(), 40, 0.75) == 10);
    CHECK(latencyQuantile(bins.data(), 40, 0.76) == 40);  // rank 4: bound 50, capped at 40
  }
}

// ---------------------------------------------------------------------------------------------
// WorkerVitals

TEST_CASE("vitals: record counts requests and bytes into the right key") {
  WorkerVitals w;
  const int64_t t = 1'000'003;  // bucket 1'000'000
  w.record(sample("s1", "r1", "alice", 200, 100, 1000, 5, 3), t);
  w.record(sample("s1", "r1", "alice", 200, 10, 20, 7, 2), t + 1);
  w.record(sample("s1", "r1", "alice", 500, 1, 2, 1, 1), t + 2);   // other status
  w.record(sample("s1", "r1", "bob", 200, 3, 4, 1, 0), t + 3);     // other consumer
  w.record(sample("s1", "r2", "alice", 200, 5, 6, 1, 0), t + 4);   // other route
  w.record(sample("s2", "r1", "alice", 200, 7, 8, 1, 0), t + 5);   // other service
  w.record(sample("", "", "", 404, 9, 10, 0), t + 6);               // no route, anonymous
  CHECK(w.takeClosed().empty());  // the bucket is still open
  w.tick(1'000'010);
  auto closed = w.takeClosed();
  REQUIRE(closed.size() == 1);
  CHECK(closed[0].start == 1'000'000);
  const CellMap& cells = closed[0].cells;
  CHECK(cells.size() == 6);

  const Cell* a200 = findCell(cells, "s1", "r1", "alice", 200);
  REQUIRE(a200 != nullptr);
  CHECK(a200->requests == 2);
  CHECK(a200->bytes_in == 110);
  CHECK(a200->bytes_out == 1020);

  const auto check1 = [&](std::string_view svc, std::string_view route, std::string_view cons,
                          int status, int64_t in, int64_t out) {
    CAPTURE(svc, route, cons, status);
    const Cell* c = findCell(cells, svc, route, cons, status);
    REQUIRE(c != nullptr);
    CHECK(c->requests == 1);
    CHECK(c->bytes_in == in);
    CHECK(c->bytes_out == out);
  };
  check1("s1", "r1", "alice", 500, 1, 2);
  check1("s1", "r1", "bob", 200, 3, 4);
  check1("s1", "r2", "alice", 200, 5, 6);
  check1("s2", "r1", "alice", 200, 7, 8);
  check1("", "", "", 404, 9, 10);
  CHECK(findCell(cells, "s1", "r1", "carol", 200) == nullptr);
}

TEST_CASE("vitals: record fills total, upstream and proxy histograms and max values") {
  WorkerVitals w;
  const int64_t t = 500;
  // total 3 / upstream 1 -> proxy 2
  w.record(sample("s", "r", "c", 200, 0, 0, 3, 1), t);
  // total 150 / upstream 40 -> proxy 110
  w.record(sample("s", "r", "c", 200, 0, 0, 150, 40), t);
  // never reached an upstream: total 12, no upstream sample, proxy = total = 12
  w.record(sample("s", "r", "c", 200, 0, 0, 12, -1), t);
  // upstream_ms == 0 counts as an upstream sample: total 0 / upstream 0 -> proxy 0
  w.record(sample("s", "r", "c", 200, 0, 0, 0, 0), t);
  // upstream longer than total (clock skew): proxy clamps to 0
  w.record(sample("s", "r", "c", 200, 0, 0, 4, 9), t);
  // negative total clamps to 0
  w.record(sample("s", "r", "c", 200, 0, 0, -5, -1), t);
  w.tick(t + 10);
  auto closed = w.takeClosed();
  REQUIRE(closed.size() == 1);
  const Cell* c = findCell(closed[0].cells, "s", "r", "c", 200);
  REQUIRE(c != nullptr);
  CHECK(c->requests == 6);

  LatencyCounts total{}, upstream{}, proxy{};
  for (int64_t ms : {3, 150, 12, 0, 4, 0}) total[latencyBin(ms)]++;
  for (int64_t ms : {1, 40, 0, 9}) upstream[latencyBin(ms)]++;
  for (int64_t ms : {2, 110, 12, 0, 0, 0}) proxy[latencyBin(ms)]++;
  CHECK(binsOf(c->total) == binsOf(total));
  CHECK(binsOf(c->upstream) == binsOf(upstream));
  CHECK(binsOf(c->proxy) == binsOf(proxy));
  CHECK(sum(c->total) == 6);
  CHECK(sum(c->upstream) == 4);  // only requests that reached an upstream
  CHECK(sum(c->proxy) == 6);
  CHECK(c->max_total == 150);
  CHECK(c->max_upstream == 40);
  CHECK(c->max_proxy == 110);

  // Spot-check placement: 150 ms in (100, 200], 110 ms too, 12 ms in (10, 20].
  CHECK(c->total[7] == 1);
  CHECK(c->proxy[7] == 1);
  CHECK(c->total[4] == 1);
  CHECK(c->proxy[4] == 1);
}

TEST_CASE("vitals: a request without an upstream leaves the upstream histogram empty") {
  WorkerVitals w;
  w.record(sample("s", "r", "", 502, 0, 0, 30, -1), 20);
  w.tick(30);
  auto closed = w.takeClosed();
  REQUIRE(closed.size() == 1);
  const Cell* c = findCell(closed[0].cells, "s", "r", "", 502);
  REQUIRE(c != nullptr);
  CHECK(sum(c->upstream) == 0);
  CHECK(c->max_upstream == 0);
  CHECK(c->total[latencyBin(30)] == 1);
  CHECK(c->proxy[latencyBin(30)] == 1);
  CHECK(c->max_total == 30);
  CHECK(c->max_proxy == 30);
}

TEST_CASE("vitals: a bucket closes on the 10 s boundary, on record and on tick") {
  WorkerVitals w;
  SECTION("record past the boundary closes the bucket") {
    w.record(sample("s", "r", "c", 200), 1000);
    w.record(sample("s", "r", "c", 200), 1009);  // same bucket [1000, 1010)
    CHECK(w.takeClosed().empty());
    w.record(sample("s", "r", "c", 200), 1010);  // next bucket
    auto closed = w.takeClosed();
    REQUIRE(closed.size() == 1);
    CHECK(closed[0].start == 1000);
    CHECK(findCell(closed[0].cells, "s", "r", "c", 200)->requests == 2);
    // The new bucket holds only the third request.
    w.tick(1020);
    closed = w.takeClosed();
    REQUIRE(closed.size() == 1);
    CHECK(closed[0].start == 1010);
    CHECK(findCell(closed[0].cells, "s", "r", "c", 200)->requests == 1);
  }
  SECTION("tick within the bucket keeps it open; tick past it closes it") {
    w.record(sample("s", "r", "c", 200), 1005);
    w.tick(1005);
    w.tick(1009);
    CHECK(w.takeClosed().empty());
    w.tick(1010);
    auto closed = w.takeClosed();
    REQUIRE(closed.size() == 1);
    CHECK(closed[0].start == 1000);
    // Idle: nothing recorded, tick closes nothing more and creates no empty bucket.
    w.tick(1020);
    w.tick(1100);
    CHECK(w.takeClosed().empty());
  }
  SECTION("an idle worker never reports an empty bucket") {
    w.tick(1000);
    w.tick(5000);
    CHECK(w.takeClosed().empty());
    CHECK(w.droppedBuckets() == 0);
  }
  SECTION("skipped buckets are not reported; starts are multiples of 10") {
    w.record(sample("s", "r", "c", 200), 1003);
    w.record(sample("s", "r", "c", 200), 1047);  // 1010..1030 had no traffic
    w.tick(1050);
    auto closed = w.takeClosed();
    REQUIRE(closed.size() == 2);
    CHECK(closed[0].start == 1000);
    CHECK(closed[1].start == 1040);
  }
}

TEST_CASE("vitals: takeClosed returns oldest first and empties the list") {
  WorkerVitals w;
  for (int i = 0; i < 5; ++i) {
    w.record(sample("s", "r", "c", 200 + i), 100 + 10 * i);
  }
  w.tick(150);
  auto closed = w.takeClosed();
  REQUIRE(closed.size() == 5);
  for (int i = 0; i < 5; ++i) {
    CAPTURE(i);
    CHECK(closed[i].start == 100 + 10 * i);
    CHECK(closed[i].cells.size() == 1);
    CHECK(findCell(closed[i].cells, "s", "r", "c", 200 + i) != nullptr);
  }
  CHECK(w.takeClosed().empty());
}

TEST_CASE("vitals: the closed-bucket cap drops the oldest and counts them") {
  WorkerVitals w(/*max_closed=*/3);
  for (int i = 0; i < 6; ++i) {
    w.record(sample("s", "r", "c", 200), 1000 + 10 * i);
  }
  // 5 closed so far (the 6th is open): 2 dropped.
  CHECK(w.droppedBuckets() == 2);
  w.tick(1060);  // the 6th closes too: 3 dropped
  CHECK(w.droppedBuckets() == 3);
  auto closed = w.takeClosed();
  REQUIRE(closed.size() == 3);
  CHECK(closed[0].start == 1030);
  CHECK(closed[1].start == 1040);
  CHECK(closed[2].start == 1050);
  // Taking them makes room again; the count of dropped ones stays.
  w.record(sample("s", "r", "c", 200), 1070);
  w.tick(1080);
  CHECK(w.takeClosed().size() == 1);
  CHECK(w.droppedBuckets() == 3);
}

TEST_CASE("vitals: toProto writes every field and all bins") {
  WorkerVitals w;
  w.record(sample("svc", "rt", "cons", 201, 11, 22, 250, 200), 70);
  w.record(sample("svc", "rt", "cons", 201, 1, 2, 3, -1), 71);
  w.tick(80);
  auto closed = w.takeClosed();
  REQUIRE(closed.size() == 1);
  const auto& [key, cell] = *closed[0].cells.begin();
  sync::v1::VitalsBucket b;
  toProto(closed[0].start, key, cell, &b);
  CHECK(b.start() == 70);
  CHECK(b.service_id() == "svc");
  CHECK(b.route_id() == "rt");
  CHECK(b.consumer_id() == "cons");
  CHECK(b.status_code() == 201);
  CHECK(b.requests() == 2);
  CHECK(b.bytes_in() == 12);
  CHECK(b.bytes_out() == 24);
  REQUIRE(b.total().bins_size() == static_cast<int>(kLatencyBins));
  REQUIRE(b.upstream().bins_size() == static_cast<int>(kLatencyBins));
  REQUIRE(b.proxy().bins_size() == static_cast<int>(kLatencyBins));
  CHECK(binsOf(b.total()) == binsOf(cell.total));
  CHECK(binsOf(b.upstream()) == binsOf(cell.upstream));
  CHECK(binsOf(b.proxy()) == binsOf(cell.proxy));
  CHECK(b.total().max_ms() == 250);
  CHECK(b.upstream().max_ms() == 200);
  CHECK(b.proxy().max_ms() == 50);
  CHECK(b.total().bins(latencyBin(250)) == 1);
  CHECK(b.total().bins(latencyBin(3)) == 1);
  CHECK(b.upstream().bins(latencyBin(200)) == 1);
  CHECK(b.proxy().bins(latencyBin(50)) == 1);
  CHECK(b.proxy().bins(latencyBin(3)) == 1);
}

// ---------------------------------------------------------------------------------------------
// Collector

TEST_CASE("vitals: collect merges equal keys across workers and keeps buckets apart") {
  Collector c(2);
  REQUIRE(c.workers() == 2);
  WorkerVitals& w0 = c.worker(0);
  WorkerVitals& w1 = c.worker(1);
  w0.record(sample("s", "r", "alice", 200, 10, 100, 3, 1), 1000);
  w0.record(sample("s", "r", "alice", 200, 10, 100, 400, 300), 1001);
  w1.record(sample("s", "r", "alice", 200, 5, 50, 30, -1), 1002);  // same key, other worker
  w1.record(sample("s", "r", "bob", 200, 1, 1, 1, 1), 1003);       // only on worker 1
  w0.record(sample("s", "r", "alice", 200, 7, 7, 2, 1), 1010);     // next bucket
  w0.tick(1020);
  w1.tick(1020);

  CHECK(c.collect() == 1);
  auto buckets = pendingBuckets(c);
  REQUIRE(buckets.size() == 3);

  const auto& a = buckets.at({1000, "s", "r", "alice", 200});
  CHECK(a.requests() == 3);
  CHECK(a.bytes_in() == 25);
  CHECK(a.bytes_out() == 250);
  CHECK(a.total().max_ms() == 400);
  CHECK(a.upstream().max_ms() == 300);
  CHECK(a.proxy().max_ms() == 100);
  LatencyCounts total{}, upstream{}, proxy{};
  for (int64_t ms : {3, 400, 30}) total[latencyBin(ms)]++;
  for (int64_t ms : {1, 300}) upstream[latencyBin(ms)]++;
  for (int64_t ms : {2, 100, 30}) proxy[latencyBin(ms)]++;
  CHECK(binsOf(a.total()) == binsOf(total));
  CHECK(binsOf(a.upstream()) == binsOf(upstream));
  CHECK(binsOf(a.proxy()) == binsOf(proxy));

  CHECK(buckets.at({1000, "s", "r", "bob", 200}).requests() == 1);
  CHECK(buckets.at({1010, "s", "r", "alice", 200}).requests() == 1);
  CHECK(buckets.at({1010, "s", "r", "alice", 200}).bytes_in() == 7);

  // Nothing new: nothing queued and no seq used.
  CHECK(c.collect() == 0);
  CHECK(pendingSeqs(c) == std::vector<uint64_t>{1});
}

TEST_CASE("vitals: consumers past the top N of a route fold into \"*\"") {
  Collector c(2);
  Collector::Settings s;
  s.top_consumers = 2;
  c.setSettings(s);
  CHECK(c.settings().top_consumers == 2);
  CHECK(c.settings().max_batch_buckets == 5000);

  // Route r1 (service s1), requests per consumer over all statuses:
  //   alice 10 (200x8, 404x2), bob 7 (200x7), carol 5 (200x3, 404x2), dave 4 (404x4),
  //   erin 1 (500x1), anonymous 1 (200x1).
  // Top 2 = alice, bob. carol, dave, erin fold, though dave is the biggest 404 consumer:
  // the rank is over the whole route. Anonymous is no consumer and stays however small.
  // Route r2 has only two consumers: nothing folds there, however small they are.
  struct Row {
    std::string_view route, consumer;
    int status, count;
  };
  const std::vector<Row> rows = {
      {"r1", "alice", 200, 8}, {"r1", "alice", 404, 2}, {"r1", "bob", 200, 7},
      {"r1", "carol", 200, 3}, {"r1", "carol", 404, 2}, {"r1", "dave", 404, 4},
      {"r1", "erin", 500, 1},  {"r1", "", 200, 1},      {"r2", "x", 200, 1},
      {"r2", "y", 200, 1},
  };
  // What should come out, per (route, consumer-after-folding, status); every request
  // alternates workers and has its own bytes and latencies.
  const auto folded = [](std::string_view route, std::string_view consumer) {
    return route == "r1" && (consumer == "carol" || consumer == "dave" || consumer == "erin");
  };
  std::map<std::tuple<std::string, std::string, int>, Cell> expected;
  std::map<std::tuple<std::string, int>, Cell> per_route_status;
  int n = 0;
  for (const Row& row : rows) {
    for (int i = 0; i < row.count; ++i, ++n) {
      const Sample smp = sample("s1", row.route, row.consumer, row.status, 100 + n, 1000 + 7 * n,
                                3 * n + 1, n % 3 == 0 ? -1 : n);
      c.worker(n % 2).record(smp, 2000 + n % 10);
      const std::string cons = folded(row.route, row.consumer) ? "*" : std::string(row.consumer);
      expected[{std::string(row.route), cons, row.status}].add(smp);
      per_route_status[{std::string(row.route), row.status}].add(smp);
    }
  }
  c.worker(0).tick(2010);
  c.worker(1).tick(2010);
  CHECK(c.collect() == 1);
  auto buckets = pendingBuckets(c);

  // Exactly the expected keys: alice 200/404, bob 200, "*" 200/404/500, anonymous 200, x, y.
  REQUIRE(buckets.size() == expected.size());
  CHECK(buckets.size() == 9);
  for (const auto& [k, cell] : expected) {
    const auto& [route, cons, status] = k;
    CAPTURE(route, cons, status);
    auto it = buckets.find({2000, "s1", route, cons, status});
    REQUIRE(it != buckets.end());
    const auto& b = it->second;
    CHECK(b.requests() == cell.requests);
    CHECK(b.bytes_in() == cell.bytes_in);
    CHECK(b.bytes_out() == cell.bytes_out);
    CHECK(binsOf(b.total()) == binsOf(cell.total));
    CHECK(binsOf(b.upstream()) == binsOf(cell.upstream));
    CHECK(binsOf(b.proxy()) == binsOf(cell.proxy));
    CHECK(b.total().max_ms() == cell.max_total);
    CHECK(b.upstream().max_ms() == cell.max_upstream);
    CHECK(b.proxy().max_ms() == cell.max_proxy);
  }
  CHECK(buckets.at({2000, "s1", "r1", "*", 200}).requests() == 3);  // carol
  CHECK(buckets.at({2000, "s1", "r1", "*", 404}).requests() == 6);  // carol 2 + dave 4
  CHECK(buckets.at({2000, "s1", "r1", "*", 500}).requests() == 1);  // erin
  CHECK(buckets.at({2000, "s1", "r1", "", 200}).requests() == 1);
  for (std::string_view gone : {"carol", "dave", "erin"}) {
    CHECK(buckets.count({2000, "s1", "r1", std::string(gone), 200}) == 0);
    CHECK(buckets.count({2000, "s1", "r1", std::string(gone), 404}) == 0);
    CHECK(buckets.count({2000, "s1", "r1", std::string(gone), 500}) == 0);
  }
  CHECK(buckets.count({2000, "s1", "r2", "*", 200}) == 0);

  // Totals per (route, status) are preserved exactly.
  std::map<std::tuple<std::string, int>, Cell> got;
  for (const auto& [id, b] : buckets) {
    Cell& g = got[{std::get<2>(id), std::get<4>(id)}];
    g.requests += b.requests();
    g.bytes_in += b.bytes_in();
    g.bytes_out += b.bytes_out();
    for (size_t i = 0; i < kLatencyBins; ++i) {
      g.total[i] += b.total().bins(static_cast<int>(i));
      g.upstream[i] += b.upstream().bins(static_cast<int>(i));
      g.proxy[i] += b.proxy().bins(static_cast<int>(i));
    }
    g.max_total = std::max(g.max_total, b.total().max_ms());
    g.max_upstream = std::max(g.max_upstream, b.upstream().max_ms());
    g.max_proxy = std::max(g.max_proxy, b.proxy().max_ms());
  }
  REQUIRE(got.size() == per_route_status.size());
  for (const auto& [k, want] : per_route_status) {
    CAPTURE(std::get<0>(k), std::get<1>(k));
    const Cell& g = got.at(k);
    CHECK(g.requests == want.requests);
    CHECK(g.bytes_in == want.bytes_in);
    CHECK(g.bytes_out == want.bytes_out);
    CHECK(binsOf(g.total) == binsOf(want.total));
    CHECK(binsOf(g.upstream) == binsOf(want.upstream));
    CHECK(binsOf(g.proxy) == binsOf(want.proxy));
    CHECK(g.max_total == want.max_total);
    CHECK(g.max_upstream == want.max_upstream);
    CHECK(g.max_proxy == want.max_proxy);
  }
}

TEST_CASE("vitals: ranking is per route id; the \"*\" rows keep service and status apart") {
  // One route id under two services (cannot happen with Kong's unique route ids, but keys
  // carry both). The rank is over the route id alone, as vitals.h documents: big 5, tiny 2,
  // small 1, so top 1 keeps only big; tiny's rows fold into sB's own "*" rows, per status.
  Collector c(1);
  Collector::Settings s;
  s.top_consumers = 1;
  c.setSettings(s);
  auto& w = c.worker(0);
  for (int i = 0; i < 5; ++i) w.record(sample("sA", "r", "big", 200), 3000);
  w.record(sample("sA", "r", "small", 200), 3000);
  w.record(sample("sB", "r", "tiny", 200), 3000);
  w.record(sample("sB", "r", "tiny", 503), 3000);
  w.tick(3010);
  c.collect();
  auto buckets = pendingBuckets(c);
  CHECK(buckets.size() == 4);
  CHECK(buckets.at({3000, "sA", "r", "big", 200}).requests() == 5);
  CHECK(buckets.at({3000, "sA", "r", "*", 200}).requests() == 1);
  CHECK(buckets.at({3000, "sB", "r", "*", 200}).requests() == 1);
  CHECK(buckets.at({3000, "sB", "r", "*", 503}).requests() == 1);
}

TEST_CASE("vitals: top-N ties break by consumer id, whatever the order of arrival") {
  // a, b, c have 3 requests each, d has 1; top 2 keeps a and b.
  const std::vector<std::vector<std::string_view>> orders = {
      {"a", "b", "c", "d"}, {"d", "c", "b", "a"}, {"c", "a", "d", "b"}, {"b", "d", "a", "c"}};
  for (const auto& order : orders) {
    CAPTURE(order);
    Collector c(2);
    Collector::Settings s;
    s.top_consumers = 2;
    c.setSettings(s);
    int n = 0;
    for (std::string_view cons : order) {
      const int count = cons == "d" ? 1 : 3;
      for (int i = 0; i < count; ++i, ++n) {
        c.worker(n % 2).record(sample("s", "r", cons, 200), 4000);
      }
    }
    c.worker(0).tick(4010);
    c.worker(1).tick(4010);
    c.collect();
    auto buckets = pendingBuckets(c);
    REQUIRE(buckets.size() == 3);
    CHECK(buckets.at({4000, "s", "r", "a", 200}).requests() == 3);
    CHECK(buckets.at({4000, "s", "r", "b", 200}).requests() == 3);
    CHECK(buckets.at({4000, "s", "r", "*", 200}).requests() == 4);  // c 3 + d 1
  }
}

TEST_CASE("vitals: the anonymous consumer is never folded, nor counted in the top N") {
  Collector c(1);
  Collector::Settings s;
  s.top_consumers = 0;  // every named consumer folds
  c.setSettings(s);
  auto& w = c.worker(0);
  w.record(sample("s", "r", "", 200), 5000);
  w.record(sample("s", "r", "k1", 200), 5000);
  w.record(sample("s", "r", "k2", 200), 5000);
  w.tick(5010);
  c.collect();
  auto buckets = pendingBuckets(c);
  REQUIRE(buckets.size() == 2);
  CHECK(buckets.at({5000, "s", "r", "", 200}).requests() == 1);
  CHECK(buckets.at({5000, "s", "r", "*", 200}).requests() == 2);

  // Top 2 with exactly 2 named consumers and an anonymous one: nothing folds.
  Collector c2(1);
  s.top_consumers = 2;
  c2.setSettings(s);
  auto& w2 = c2.worker(0);
  for (int i = 0; i < 9; ++i) w2.record(sample("s", "r", "", 200), 5000);
  w2.record(sample("s", "r", "k1", 200), 5000);
  w2.record(sample("s", "r", "k2", 200), 5000);
  w2.tick(5010);
  c2.collect();
  auto b2 = pendingBuckets(c2);
  REQUIRE(b2.size() == 3);
  CHECK(b2.count({5000, "s", "r", "*", 200}) == 0);
  CHECK(b2.at({5000, "s", "r", "", 200}).requests() == 9);
}

TEST_CASE("vitals: folding ranks each bucket on its own") {
  // Bucket 6000: k1 leads; bucket 6010: k2 leads. Top 1 keeps a different consumer in each.
  Collector c(1);
  Collector::Settings s;
  s.top_consumers = 1;
  c.setSettings(s);
  auto& w = c.worker(0);
  for (int i = 0; i < 3; ++i) w.record(sample("s", "r", "k1", 200), 6000);
  w.record(sample("s", "r", "k2", 200), 6000);
  w.record(sample("s", "r", "k1", 200), 6010);
  for (int i = 0; i < 3; ++i) w.record(sample("s", "r", "k2", 200), 6010);
  w.tick(6020);
  c.collect();
  auto buckets = pendingBuckets(c);
  REQUIRE(buckets.size() == 4);
  CHECK(buckets.at({6000, "s", "r", "k1", 200}).requests() == 3);
  CHECK(buckets.at({6000, "s", "r", "*", 200}).requests() == 1);
  CHECK(buckets.at({6010, "s", "r", "k2", 200}).requests() == 3);
  CHECK(buckets.at({6010, "s", "r", "*", 200}).requests() == 1);
}

TEST_CASE("vitals: batches split at max_batch_buckets and are numbered from 1") {
  Collector c(1);
  Collector::Settings s;
  s.max_batch_buckets = 2;
  c.setSettings(s);
  auto& w = c.worker(0);
  for (int i = 0; i < 5; ++i) w.record(sample("s", "r", "", 200 + i), 7000);
  w.tick(7010);
  CHECK(c.collect() == 3);
  auto pending = c.pending();
  REQUIRE(pending.size() == 3);
  CHECK(pending[0]->seq() == 1);
  CHECK(pending[1]->seq() == 2);
  CHECK(pending[2]->seq() == 3);
  CHECK(pending[0]->buckets_size() == 2);
  CHECK(pending[1]->buckets_size() == 2);
  CHECK(pending[2]->buckets_size() == 1);
  CHECK(pendingBuckets(c).size() == 5);  // each bucket exactly once
  for (const auto& b : pending) CHECK(b->dropped_batches() == 0);

  // The next collect continues the numbering.
  w.record(sample("s", "r", "", 200), 7010);
  w.tick(7020);
  CHECK(c.collect() == 1);
  CHECK(pendingSeqs(c) == std::vector<uint64_t>{1, 2, 3, 4});

  const auto st = c.stats();
  CHECK(st.batches == 4);
  CHECK(st.pending == 4);
  CHECK(st.acknowledged == 0);
  CHECK(st.dropped_batches == 0);
  CHECK(st.dropped_buckets == 0);
}

TEST_CASE("vitals: batches carry older buckets first") {
  Collector c(2);
  Collector::Settings s;
  s.max_batch_buckets = 1;
  c.setSettings(s);
  // Worker 1 holds the older bucket; the batches still come out by start time.
  c.worker(0).record(sample("s", "r", "", 200), 8020);
  c.worker(1).record(sample("s", "r", "", 200), 8000);
  c.worker(1).record(sample("s", "r", "", 200), 8010);
  c.worker(0).tick(8030);
  c.worker(1).tick(8030);
  CHECK(c.collect() == 3);
  auto pending = c.pending();
  REQUIRE(pending.size() == 3);
  CHECK(pending[0]->buckets(0).start() == 8000);
  CHECK(pending[1]->buckets(0).start() == 8010);
  CHECK(pending[2]->buckets(0).start() == 8020);
}

TEST_CASE("vitals: max_batch_buckets of 0 is treated as 1") {
  Collector c(1);
  Collector::Settings s;
  s.max_batch_buckets = 0;
  c.setSettings(s);
  c.worker(0).record(sample("s", "r", "", 200), 100);
  c.worker(0).record(sample("s", "r", "", 201), 100);
  c.worker(0).tick(110);
  CHECK(c.collect() == 2);
  for (const auto& b : c.pending()) CHECK(b->buckets_size() == 1);
}

TEST_CASE("vitals: acknowledge removes a batch by seq; unknown seqs are ignored") {
  Collector c(1);
  Collector::Settings s;
  s.max_batch_buckets = 1;
  c.setSettings(s);
  for (int i = 0; i < 4; ++i) c.worker(0).record(sample("s", "r", "", 200 + i), 9000);
  c.worker(0).tick(9010);
  REQUIRE(c.collect() == 4);
  CHECK(pendingSeqs(c) == std::vector<uint64_t>{1, 2, 3, 4});

  c.acknowledge(2);  // out of order: the rest keep their order
  CHECK(pendingSeqs(c) == std::vector<uint64_t>{1, 3, 4});
  c.acknowledge(1);
  CHECK(pendingSeqs(c) == std::vector<uint64_t>{3, 4});
  c.acknowledge(1);   // again
  c.acknowledge(99);  // never sent
  c.acknowledge(0);
  CHECK(pendingSeqs(c) == std::vector<uint64_t>{3, 4});
  auto st = c.stats();
  CHECK(st.acknowledged == 2);
  CHECK(st.pending == 2);
  CHECK(st.batches == 4);

  c.acknowledge(4);
  c.acknowledge(3);
  CHECK(c.pending().empty());
  st = c.stats();
  CHECK(st.acknowledged == 4);
  CHECK(st.pending == 0);
}

TEST_CASE("vitals: a full queue drops the oldest batch and counts it") {
  Collector c(1, /*max_batches=*/2);
  Collector::Settings s;
  s.max_batch_buckets = 1;
  c.setSettings(s);
  auto& w = c.worker(0);
  for (int i = 0; i < 3; ++i) w.record(sample("s", "r", "", 200 + i), 100);
  w.tick(110);
  CHECK(c.collect() == 3);  // queued, even though one of them was dropped right away
  CHECK(pendingSeqs(c) == std::vector<uint64_t>{2, 3});
  auto st = c.stats();
  CHECK(st.batches == 3);
  CHECK(st.dropped_batches == 1);
  CHECK(st.pending == 2);

  // Acknowledging the dropped one does nothing.
  c.acknowledge(1);
  CHECK(c.stats().acknowledged == 0);
  CHECK(pendingSeqs(c) == std::vector<uint64_t>{2, 3});

  // Later batches report the drops so far; the queue keeps the newest two.
  w.record(sample("s", "r", "", 200), 110);
  w.record(sample("s", "r", "", 201), 110);
  w.tick(120);
  CHECK(c.collect() == 2);
  auto pending = c.pending();
  REQUIRE(pending.size() == 2);
  CHECK(pending[0]->seq() == 4);
  CHECK(pending[1]->seq() == 5);
  CHECK(pending[0]->dropped_batches() >= 1);
  CHECK(pending[1]->dropped_batches() >= 2);
  st = c.stats();
  CHECK(st.batches == 5);
  CHECK(st.dropped_batches == 3);
  CHECK(st.pending == 2);

  // Room again after an acknowledge.
  c.acknowledge(4);
  w.record(sample("s", "r", "", 200), 120);
  w.tick(130);
  CHECK(c.collect() == 1);
  CHECK(pendingSeqs(c) == std::vector<uint64_t>{5, 6});
  CHECK(c.stats().dropped_batches == 3);
}

TEST_CASE("vitals: collector stats add up the workers' dropped buckets") {
  // The collector's workers keep 360 closed buckets each (one hour of 10 s buckets).
  Collector c(2);
  for (int i = 0; i < 362; ++i) c.worker(0).record(sample("s", "r", "", 200), 10 * i);
  for (int i = 0; i < 361; ++i) c.worker(1).record(sample("s", "r", "", 200), 10 * i);
  c.worker(0).tick(3620);
  c.worker(1).tick(3620);
  CHECK(c.worker(0).droppedBuckets() == 2);
  CHECK(c.worker(1).droppedBuckets() == 1);
  CHECK(c.stats().dropped_buckets == 3);
  CHECK(c.collect() == 1);  // 361 merged buckets in one batch of at most 5000
  // Worker 0 kept 20..3610 (dropped 0 and 10), worker 1 kept 10..3600 (dropped 0).
  auto buckets = pendingBuckets(c);
  CHECK(buckets.size() == 361);
  CHECK(buckets.count({0, "s", "r", "", 200}) == 0);
  CHECK(buckets.at({10, "s", "r", "", 200}).requests() == 1);    // worker 1 only
  CHECK(buckets.at({20, "s", "r", "", 200}).requests() == 2);    // both
  CHECK(buckets.at({3600, "s", "r", "", 200}).requests() == 2);  // both
  CHECK(buckets.at({3610, "s", "r", "", 200}).requests() == 1);  // worker 0 only
}

}  // namespace
}  // namespace portico::dp::vitals
