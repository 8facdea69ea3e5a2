// Vitals on the data plane: every request is counted into its worker's current 10-second
// bucket, keyed by (service, route, consumer, status code), with bytes and latency
// histograms (total, upstream, proxy). The worker owns its shard outright: recording is a hash
// lookup and a few adds, with no lock and no atomic. When a bucket's 10 s are over the worker
// hands the whole map over (one mutex, once per bucket), and the Collector merges the workers'
// buckets, folds the consumers past the top N of each route into "*", and queues them as
// numbered batches until the control plane acknowledges them (sync_client's Report stream).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/synchronization/mutex.h"
#include "common/vitals/latency_bins.h"
#include "portico/sync/v1/sync.pb.h"

namespace portico::dp::vitals {

using portico::vitals::kBucketSeconds;
using portico::vitals::LatencyCounts;

// One finished request, as the proxy's log step sees it. Views need only live for record().
struct Sample {
  std::string_view service;   // "" when no route matched
  std::string_view route;
  std::string_view consumer;  // "" = anonymous
  int status = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  int64_t total_ms = 0;
  int64_t upstream_ms = -1;   // -1: the request never reached an upstream
};

// Counts of one key in one bucket.
struct Cell {
  int64_t requests = 0, bytes_in = 0, bytes_out = 0;
  LatencyCounts total{}, upstream{}, proxy{};
  int64_t max_total = 0, max_upstream = 0, max_proxy = 0;
  void add(const Sample& s);
  void merge(const Cell& other);
};

struct Key {
  std::string service, route, consumer;
  int status = 0;
};
struct KeyView {
  std::string_view service, route, consumer;
  int status = 0;
};
struct KeyHash {
  using is_transparent = void;
  size_t operator()(const KeyView& k) const {
    return absl::HashOf(k.service, k.route, k.consumer, k.status);
  }
  size_t operator()(const Key& k) const { return (*this)(view(k)); }
  static KeyView view(const Key& k) { return {k.service, k.route, k.consumer, k.status}; }
};
struct KeyEq {
  using is_transparent = void;
  static bool eq(const KeyView& a, const KeyView& b) {
    return a.status == b.status && a.route == b.route && a.consumer == b.consumer &&
           a.service == b.service;
  }
  bool operator()(const Key& a, const Key& b) const { return eq(KeyHash::view(a), KeyHash::view(b)); }
  bool operator()(const Key& a, const KeyView& b) const { return eq(KeyHash::view(a), b); }
  bool operator()(const KeyView& a, const Key& b) const { return eq(a, KeyHash::view(b)); }
};
using CellMap = absl::flat_hash_map<Key, Cell, KeyHash, KeyEq>;

struct ClosedBucket {
  int64_t start = 0;  // epoch seconds, a multiple of kBucketSeconds
  CellMap cells;
};

// One worker's shard. record() and tick() run on the worker's thread only.
class WorkerVitals {
 public:
  // At most `max_closed` closed buckets wait for the collector; older ones are dropped
  // (counted) while the control plane is out of reach for longer than that.
  explicit WorkerVitals(size_t max_closed = 360) : max_closed_(max_closed) {}

  void record(const Sample& s, int64_t now_s);
  // Closes the current bucket once its time is over, so an idle worker still reports.
  void tick(int64_t now_s);

  // Any thread: the closed buckets, oldest first.
  std::vector<ClosedBucket> takeClosed() ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t droppedBuckets() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void close();

  const size_t max_closed_;
  int64_t current_start_ = 0;
  CellMap current_;
  mutable absl::Mutex mu_;
  std::deque<ClosedBucket> closed_ ABSL_GUARDED_BY(mu_);
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

// Builds the proto bucket of one cell.
void toProto(int64_t start, const Key& key, const Cell& cell, sync::v1::VitalsBucket* out);

// Every worker's shard, and the batches waiting for the control plane. Thread-safe.
class Collector {
 public:
  struct Settings {
    uint32_t flush_interval_ms = 10000;
    uint32_t top_consumers = 10;
    uint32_t max_batch_buckets = 5000;
  };
  using BatchPtr = std::shared_ptr<const sync::v1::VitalsBatch>;

  // `max_batches`: batches kept unacknowledged at most; the oldest is dropped past it.
  explicit Collector(size_t workers, size_t max_batches = 1024);

  WorkerVitals& worker(size_t i) { return *workers_[i]; }
  size_t workers() const { return workers_.size(); }

  void setSettings(const Settings& s) ABSL_LOCKS_EXCLUDED(mu_);
  Settings settings() const ABSL_LOCKS_EXCLUDED(mu_);

  // Takes every worker's closed buckets, merges equal keys, keeps the top N consumers of each
  // (bucket, route) by requests (the rest become consumer "*") and queues the result as
  // batches of at most max_batch_buckets, numbered from 1 up. Returns the batches queued.
  size_t collect() ABSL_LOCKS_EXCLUDED(mu_);

  // The batches not acknowledged yet, oldest (lowest seq) first.
  std::vector<BatchPtr> pending() const ABSL_LOCKS_EXCLUDED(mu_);
  // The CP stored it, had it already, or refused it for good: it is not sent again.
  void acknowledge(uint64_t seq) ABSL_LOCKS_EXCLUDED(mu_);

  struct Stats {
    uint64_t batches = 0;          // queued since start
    uint64_t acknowledged = 0;
    uint64_t dropped_batches = 0;  // queue full
    uint64_t dropped_buckets = 0;  // a worker's closed buckets past its cap
    uint64_t pending = 0;
  };
  Stats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  std::vector<std::unique_ptr<WorkerVitals>> workers_;
  const size_t max_batches_;
  mutable absl::Mutex mu_;
  Settings settings_ ABSL_GUARDED_BY(mu_);
  std::deque<BatchPtr> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t batches_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t acknowledged_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_batches_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace portico::dp::vitals
