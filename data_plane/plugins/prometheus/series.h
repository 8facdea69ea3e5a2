// The prometheus plugin's per-request series (kong_http_requests_total, kong_bandwidth_bytes
// and the three latency histograms). The log phase records into a shard owned by the calling
// worker thread: one writer per shard, so a value is bumped with a plain load and store on
// memory no other worker writes (no lock, no atomic read-modify-write, no shared cache line).
// The scraper (status listener thread) walks every shard and sums them.
//
// Cardinality is bounded two ways (docs/plugins.md, "prometheus"):
//  * a series whose route/service label pair or consumer no longer exists in the served
//    config for `retire_after_ms` is retired: no longer exported, and freed once its worker
//    has let go of it (the worker notices on its next request);
//  * a shard holds at most kMaxSeriesPerShard series; samples for new series beyond that
//    are dropped and counted (kong_nginx_metric_errors_total, as Kong counts a full shm).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"

namespace portico::dp::plugins::prometheus {

// Kong's buckets (kong/plugins/prometheus/exporter.lua), in milliseconds.
inline constexpr std::array<uint32_t, 17> kKongLatencyBuckets = {
    1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000, 3000, 6000};
inline constexpr std::array<uint32_t, 13> kUpstreamLatencyBuckets = {
    25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000};

inline constexpr uint32_t kMaxSeriesPerShard = 65536;

// One request, as the log phase saw it. The views only need to live during record().
struct Sample {
  std::string_view service;   // the service's name, else its host; "" for a serviceless route
  std::string_view route;     // the route's name, else its id
  std::string_view consumer;  // the consumer's username with per_consumer, else ""
  uint16_t code = 0;          // the response status; 0: status_code_metrics is off
  bool from_service = false;  // source="service" (the upstream answered), else "kong"
  bool bandwidth = false;     // bandwidth_metrics
  uint64_t ingress = 0;       // request bytes
  uint64_t egress = 0;        // response bytes
  bool latency = false;       // latency_metrics
  int64_t kong_ms = -1;       // -1: not observed
  int64_t upstream_ms = -1;
  int64_t request_ms = -1;
};

// Bucket counts (not cumulative; the last one is +Inf) and the sum of the observations.
template <size_t N>
struct HistogramValues {
  std::array<uint64_t, N + 1> buckets{};
  uint64_t sum = 0;
  uint64_t count() const {
    uint64_t c = 0;
    for (uint64_t b : buckets) c += b;
    return c;
  }
};
struct LatencyValues {
  HistogramValues<kKongLatencyBuckets.size()> kong;
  HistogramValues<kUpstreamLatencyBuckets.size()> upstream;
  HistogramValues<kUpstreamLatencyBuckets.size()> request;
};

// Every exported series, summed over the shards, in label order.
struct Merged {
  // (service, route, code, from_service, consumer) -> requests
  std::map<std::tuple<std::string, std::string, uint16_t, bool, std::string>, uint64_t> requests;
  // (service, route, consumer) -> {ingress, egress}
  std::map<std::tuple<std::string, std::string, std::string>, std::array<uint64_t, 2>> bandwidth;
  // (service, route) -> histograms
  std::map<std::pair<std::string, std::string>, LatencyValues> latency;
  uint64_t dropped = 0;  // samples dropped over kMaxSeriesPerShard
};

// The label values the served config still has.
class Live {
 public:
  void addRoute(std::string_view service, std::string_view route);
  void addConsumer(std::string_view username);
  // An empty consumer label ("" without per_consumer) is always live.
  bool has(std::string_view service, std::string_view route, std::string_view consumer) const;

 private:
  absl::flat_hash_set<std::string> routes_;  // service + '\0' + route (names hold no NUL)
  absl::flat_hash_set<std::string> consumers_;
};

// The longest prefix of `s` that is valid UTF-8 (Kong's exporter cuts a label value there).
std::string_view validUtf8Prefix(std::string_view s);

class SeriesStore {
 public:
  // The data plane's store. Never destroyed (worker threads may still record at exit).
  static SeriesStore& process();

  SeriesStore();
  // A store must outlive every thread that recorded into it (process() does).
  ~SeriesStore();
  SeriesStore(const SeriesStore&) = delete;
  SeriesStore& operator=(const SeriesStore&) = delete;

  // Any thread; the first call on a thread creates its shard (under a mutex, once).
  void record(const Sample& sample);

  // The scraper. Sums every shard (and what threads that exited left). With `live`, a series
  // that names a route/service pair or a consumer `live` lacks, for `retire_after_ms` in a
  // row (measured across calls, by `now_ms`), is retired; without it nothing is.
  Merged collect(const Live* live, int64_t now_ms, int64_t retire_after_ms);

  // Series held (tests): in live shards, retired ones not yet freed included.
  size_t seriesHeld();

 private:
  struct Node;
  struct CounterNode;
  struct LatencyNode;
  struct Shard;
  struct Local;
  friend struct Local;
  Local& local();
  void foldOrphan(Shard* shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::vector<Shard*> shards_ ABSL_GUARDED_BY(mu_);
  // What threads that exited recorded, scraper-owned like the shards' lists.
  struct Retained;
  std::unique_ptr<Retained> retained_ ABSL_GUARDED_BY(mu_);
};

}  // namespace portico::dp::plugins::prometheus
