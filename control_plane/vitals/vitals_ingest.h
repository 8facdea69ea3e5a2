// VitalsIngest: the control plane's VitalsSink. A batch is queued (bounded) as it comes. A
// fold thread takes the queue in order, checks each batch's shape (garbage is refused with a
// reason, counted, and stores nothing), puts each sender's batches in seq order (a duplicate is answered as one, a
// batch above a missing lower seq gets RETRY), checks the entities it names (a cache in front
// of PostgreSQL), and adds it into the open Window (vitals_store.h), then drops it. A writer
// thread takes the open window whenever it is free and stores it in one transaction while
// the next window fills: at most one write transaction per DP flush, usually one for many
// DPs, and each key upserted once per window instead of once per batch. Acks go out only after
// the commit: a CP killed before it stores nothing and the DPs send those batches again. The
// writer also runs the rollup and retention jobs, taking turns with the other replicas.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "common/metrics/histogram.h"
#include "common/metrics/metrics.h"
#include "control_plane/store/pg_pool.h"
#include "control_plane/sync/sync_server.h"
#include "control_plane/vitals/vitals_store.h"

namespace portico::cp::vitals {

struct IngestOptions {
  std::string dsn;
  uint32_t flush_interval_ms = 10000;  // the DPs' cadence (VitalsSettings)
  uint32_t top_consumers = 10;         // per route and bucket (--vitals_top_consumers)
  uint32_t max_batch_buckets = 5000;
  size_t max_queue_batches = 4096;     // past it new batches get RETRY
  size_t max_queue_bytes = 256u << 20; // so does a batch past this many queued bytes
  // Keys one window may hold (~600 bytes each: 240 MB); past it batches get RETRY until the
  // writer takes the window. A fleet's 10 s bucket at the bench's size is ~64k keys.
  size_t max_window_rows = 400000;
  // The writer takes the open window once no batch joined it for coalesce_ms, or once it is
  // max_window_ms old (or half full), whichever is first: a fleet's flush arrives over a few
  // seconds, and each window that touches a 10 s bucket upserts every key of it again.
  uint32_t coalesce_ms = 200;
  uint32_t max_window_ms = 4000;
  // How long ids found in PostgreSQL are trusted without asking again (a deleted route's
  // buckets are refused after at most this long).
  int64_t entity_cache_s = 60;
  int64_t retention_interval_s = 60;   // 0: the job does not run (tests)
  // The 10 s rows of a minute go into its 1 min (and 1 h) rows this long after it ended, by
  // a job run every rollup_interval_s (vitals_store.h: rollUp); 0: it does not run.
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
  // Folds what is queued, writes it once, and stops both threads; batches not stored by then
  // get no ack (their DPs send them again).
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
  struct Answer {
    Done done;
    sync::v1::VitalsAck ack;
  };
  // The window batches are being added into, with the answers its commit sends.
  struct OpenWindow {
    Window data;
    std::vector<Answer> answers;  // STORED for its batches, DUPLICATE for resends of them
    int64_t oldest_ms = 0;        // steady ms the oldest batch answered by it was queued
    int64_t opened_ms = 0, last_ms = 0;  // steady ms of its first and last batch added
  };
  // A sender's seqs: `folded` added into a window (or refused), `committed` stored.
  struct SenderSeqs {
    uint64_t folded = 0, committed = 0;
    int64_t used_ms = 0;
  };
  using Sender = Window::Sender;
  // The ids of one group that PostgreSQL confirmed.
  struct GroupIds {
    absl::flat_hash_set<std::string> services, routes, consumers;
  };

  void foldLoop();
  void writeLoop();
  void fold(Pending p);
  // "" when every id `batch` names is an entity of `group`, else why not (unknown_entity:
  // ...). Asks PostgreSQL for ids the cache lacks; false when it cannot be asked.
  bool checkEntities(const std::string& group, const sync::v1::VitalsBatch& batch,
                     std::string* refusal);
  void answer(std::vector<Answer>& answers, sync::v1::VitalsAck::Result result,
              const std::string& reason = "");
  void retry(Pending& p, const std::string& reason);
  void refuse(Pending& p, const std::string& reason);

  const IngestOptions options_;
  PgPool pool_;  // two connections: the fold thread's lookups and the writer's transaction
  std::thread fold_thread_, write_thread_;

  // submit() -> fold thread.
  mutable absl::Mutex inbox_mu_;
  std::deque<Pending> inbox_ ABSL_GUARDED_BY(inbox_mu_);
  size_t inbox_bytes_ ABSL_GUARDED_BY(inbox_mu_) = 0;  // serialized size of the queued batches
  bool stop_ ABSL_GUARDED_BY(inbox_mu_) = false;

  // Fold thread <-> writer.
  mutable absl::Mutex window_mu_;
  std::unique_ptr<OpenWindow> open_ ABSL_GUARDED_BY(window_mu_);
  std::map<Sender, SenderSeqs> senders_ ABSL_GUARDED_BY(window_mu_);
  uint64_t reset_epoch_ ABSL_GUARDED_BY(window_mu_) = 0;  // senders_ cleared (a conflict)
  bool fold_done_ ABSL_GUARDED_BY(window_mu_) = false;
  int64_t writing_oldest_ms_ ABSL_GUARDED_BY(window_mu_) = 0;  // the window being written

  // Fold thread only.
  std::map<std::string, GroupIds> entities_;
  int64_t entities_since_ms_ = 0;
  int64_t senders_swept_ms_ = 0;

  mutable absl::Mutex refused_mu_;
  std::map<std::string, uint64_t> refused_ ABSL_GUARDED_BY(refused_mu_);  // by reason
  std::atomic<uint64_t> stored_{0}, duplicates_{0}, retries_{0}, rows_{0}, writes_{0},
      write_failures_{0}, conflicts_{0}, retention_rows_{0};
  std::atomic<size_t> window_rows_{0};
  metrics::Histogram write_seconds_{metrics::Histogram::secondsBounds()};
};

}  // namespace portico::cp::vitals
