// VitalsIngest: the control plane's VitalsSink. A batch is checked for shape at once (garbage
// is refused with a reason, counted, and stores nothing), queued, and written by one thread
// that takes what queued up in the last moment and stores it in one transaction
// (vitals_store.h: ingest), so there is at most one write transaction per DP flush, usually
// one for many DPs. Acks go out only after the commit: a CP killed before it stores nothing
// and the DP sends the batch again. The same thread runs the retention job, taking turns with
// the other replicas.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/metrics/histogram.h"
#include "common/metrics/metrics.h"
#include "control_plane/store/pg_pool.h"
#include "control_plane/sync/sync_server.h"

namespace portico::cp::vitals {

struct IngestOptions {
  std::string dsn;
  uint32_t flush_interval_ms = 10000;  // the DPs' cadence (VitalsSettings)
  uint32_t top_consumers = 10;         // per route and bucket (--vitals_top_consumers)
  uint32_t max_batch_buckets = 5000;
  size_t max_queue_batches = 4096;     // past it new batches get RETRY
  size_t max_queue_bytes = 256u << 20; // so does a batch past this many queued bytes
  uint32_t coalesce_ms = 200;          // wait this long after the first batch queued
  size_t max_batches_per_write = 512;
  int64_t retention_interval_s = 60;
  // The 10 s rows of a minute go into its 1 min (and 1 h) rows this long after it ended, by
  // a job run every rollup_interval_s (vitals_store.h: rollUp).
  int64_t rollup_interval_s = 10;
  int64_t rollup_grace_s = 60;
};

// Why a batch is garbage, "" when its shape is fine: "<reason>: <detail>", with reason one
// of bad_sequence, oversized, bad_timestamp, bad_status, negative_count, bad_count,
// bad_histogram, malformed_id. `now_s` bounds the timestamps.
std::string validateBatch(const sync::v1::VitalsBatch& batch, int64_t now_s,
                          uint32_t max_buckets);

class VitalsIngest final : public VitalsSink {
 public:
  explicit VitalsIngest(IngestOptions options);
  ~VitalsIngest() override;  // stop()s

  void start();
  // Stops the writer after one last write of what is queued; batches still queued get no
  // ack (their DPs send them again).
  void stop();

  // Interface: VitalsSink
  sync::v1::VitalsSettings settings() const override;
  void submit(std::string group, std::string node_id, std::string instance,
              std::shared_ptr<const sync::v1::VitalsBatch> batch, Done done) override;
  void countRefused(const std::string& reason) override;

  void writeMetrics(metrics::Writer& w) const;
  PgPool& pool() { return pool_; }

 private:
  struct Pending {
    std::string group, node_id, instance;
    std::shared_ptr<const sync::v1::VitalsBatch> batch;
    Done done;
    std::chrono::steady_clock::time_point queued;
    size_t bytes = 0;
  };
  void loop();

  const IngestOptions options_;
  PgPool pool_;
  std::thread thread_;
  mutable absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // serialized size of the queued batches
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, uint64_t> refused_ ABSL_GUARDED_BY(mu_);  // by reason (bounded set)
  std::atomic<uint64_t> stored_{0}, duplicates_{0}, retries_{0}, rows_{0}, writes_{0},
      write_failures_{0}, retention_rows_{0};
  std::atomic<int64_t> oldest_queued_ms_{0};  // steady ms of the oldest queued batch, 0 none
  metrics::Histogram write_seconds_{metrics::Histogram::secondsBounds()};
};

}  // namespace portico::cp::vitals
