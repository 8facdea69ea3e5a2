#include "control_plane/vitals/vitals_ingest.h"

#include <algorithm>
#include <ctime>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/config/validate.h"
#include "common/logging.h"
#include "common/vitals/latency_bins.h"
#include "control_plane/vitals/vitals_store.h"

namespace portico::cp::vitals {
namespace {

constexpr char kLog[] = "vitals";
constexpr int64_t kMaxRequests = 1'000'000'000'000LL;   // per bucket: far above any real node
constexpr int64_t kMaxBytes = 1'000'000'000'000'000LL;
constexpr int64_t kMaxAgeSeconds = 90 * 24 * 3600;       // the longest retention
constexpr int64_t kMaxSkewSeconds = 60;

int64_t steadyMs(std::chrono::steady_clock::time_point t = std::chrono::steady_clock::now()) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}


std::string histogramProblem(const sync::v1::LatencyHistogram& h, const char* name,
                             int64_t requests, bool exact) {
  if (h.bins_size() != static_cast<int>(portico::vitals::kLatencyBins)) {
    return absl::StrCat(name, " has ", h.bins_size(), " bins (expected ",
                        portico::vitals::kLatencyBins, ")");
  }
  int64_t sum = 0;
  for (int64_t b : h.bins()) {
    if (b < 0 || b > kMaxRequests) return absl::StrCat(name, " has a bin of ", b);
    sum += b;
  }
  if (h.max_ms() < 0) return absl::StrCat(name, ".max_ms is negative");
  if (exact ? sum != requests : sum > requests) {
    return absl::StrCat(name, " counts ", sum, " requests of ", requests);
  }
  return "";
}

}  // namespace

std::string validateBatch(const sync::v1::VitalsBatch& batch, int64_t now_s,
                          uint32_t max_buckets) {
  if (batch.seq() == 0) return "bad_sequence: seq must be > 0";
  if (static_cast<uint32_t>(batch.buckets_size()) > max_buckets) {
    return absl::StrCat("oversized: ", batch.buckets_size(), " buckets (at most ", max_buckets,
                        ")");
  }
  if (batch.buckets_size() == 0) return "bad_count: no buckets";
  for (int j = 0; j < batch.buckets_size(); ++j) {
    const sync::v1::VitalsBucket& b = batch.buckets(j);
    const std::string at = absl::StrCat("buckets.", j, ".");
    if (b.start() % portico::vitals::kBucketSeconds != 0 || b.start() > now_s + kMaxSkewSeconds ||
        b.start() < now_s - kMaxAgeSeconds) {
      return absl::StrCat("bad_timestamp: ", at, "start ", b.start());
    }
    if (b.status_code() < 100 || b.status_code() > 999) {
      return absl::StrCat("bad_status: ", at, "status_code ", b.status_code());
    }
    if (b.requests() < 0 || b.bytes_in() < 0 || b.bytes_out() < 0) {
      return absl::StrCat("negative_count: ", at, "requests ", b.requests(), ", bytes_in ",
                          b.bytes_in(), ", bytes_out ", b.bytes_out());
    }
    if (b.requests() == 0 || b.requests() > kMaxRequests || b.bytes_in() > kMaxBytes ||
        b.bytes_out() > kMaxBytes) {
      return absl::StrCat("bad_count: ", at, "requests ", b.requests());
    }
    for (const std::string& p : {histogramProblem(b.total(), "total", b.requests(), true),
                                 histogramProblem(b.upstream(), "upstream", b.requests(), false),
                                 histogramProblem(b.proxy(), "proxy", b.requests(), true)}) {
      if (!p.empty()) return absl::StrCat("bad_histogram: ", at, p);
    }
    if (!(b.service_id().empty() || config::isUuid(b.service_id()))) {
      return absl::StrCat("malformed_id: ", at, "service_id");
    }
    if (!(b.route_id().empty() || config::isUuid(b.route_id()))) {
      return absl::StrCat("malformed_id: ", at, "route_id");
    }
    if (!(b.consumer_id().empty() || b.consumer_id() == "*" || config::isUuid(b.consumer_id()))) {
      return absl::StrCat("malformed_id: ", at, "consumer_id");
    }
  }
  return "";
}

VitalsIngest::VitalsIngest(IngestOptions options)
    : options_(std::move(options)), pool_(options_.dsn, 2) {}

VitalsIngest::~VitalsIngest() { stop(); }

void VitalsIngest::start() {
  thread_ = std::thread([this] { loop(); });
}

void VitalsIngest::stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

sync::v1::VitalsSettings VitalsIngest::settings() const {
  sync::v1::VitalsSettings s;
  s.set_flush_interval_ms(options_.flush_interval_ms);
  s.set_top_consumers(options_.top_consumers);
  s.set_max_batch_buckets(options_.max_batch_buckets);
  return s;
}

void VitalsIngest::countRefused(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  refused_[reason]++;
}

void VitalsIngest::submit(std::string group, std::string node_id, std::string instance,
                          std::shared_ptr<const sync::v1::VitalsBatch> batch, Done done) {
  sync::v1::VitalsAck ack;
  ack.set_seq(batch->seq());
  const std::string problem = validateBatch(*batch, static_cast<int64_t>(std::time(nullptr)),
                                            options_.max_batch_buckets);
  if (!problem.empty()) {
    countRefused(problem.substr(0, problem.find(':')));
    LOG_WARN(kLog, "refusing vitals batch %d of node %s: %s", batch->seq(), node_id, problem);
    ack.set_result(sync::v1::VitalsAck::REFUSED);
    ack.set_reason(problem);
    done(ack);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    // Bounded by count and by bytes: a backlog of full batches (~1 MB each) must not grow
    // the control plane's memory without end; past either bound the DP sends it later.
    const size_t bytes = batch->ByteSizeLong();
    if (!stop_ && queue_.size() < options_.max_queue_batches &&
        (queue_.empty() || queued_bytes_ + bytes <= options_.max_queue_bytes)) {
      if (queue_.empty()) oldest_queued_ms_ = steadyMs();
      queued_bytes_ += bytes;
      queue_.push_back(Pending{std::move(group), std::move(node_id), std::move(instance),
                               std::move(batch), std::move(done),
                               std::chrono::steady_clock::now(), bytes});
      return;
    }
  }
  retries_++;
  ack.set_result(sync::v1::VitalsAck::RETRY);
  ack.set_reason("ingest backlog: the control plane is behind; send it again later");
  done(ack);
}

void VitalsIngest::loop() {
  absl::Time next_retention = absl::Now() + absl::Seconds(5);
  absl::Time next_rollup = absl::Now() + absl::Seconds(1);
  uint32_t failures = 0;
  for (;;) {
    std::vector<Pending> work;
    bool stopping = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || !queue_.empty();
      };
      mu_.AwaitWithDeadline(absl::Condition(&ready), std::min(next_retention, next_rollup));
      stopping = stop_;
    }
    if (!stopping) {
      absl::SleepFor(absl::Milliseconds(options_.coalesce_ms));  // let more DPs' batches join
    }
    {
      absl::MutexLock lock(&mu_);
      while (!queue_.empty() && work.size() < options_.max_batches_per_write) {
        queued_bytes_ -= queue_.front().bytes;
        work.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      // The oldest batch left behind (past max_batches_per_write) keeps its age.
      oldest_queued_ms_ = queue_.empty() ? 0 : steadyMs(queue_.front().queued);
      stopping = stop_;
    }
    if (!work.empty()) {
      std::vector<IncomingBatch> in;
      in.reserve(work.size());
      for (const Pending& p : work) in.push_back({p.group, p.node_id, p.instance, p.batch.get()});
      std::vector<BatchResult> results;
      IngestStats stats;
      const auto t0 = std::chrono::steady_clock::now();
      const absl::Status st = ingest(pool_, in, &results, &stats);
      write_seconds_.observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (!st.ok()) {
        write_failures_++;
        LOG_WARN(kLog, "cannot store %d vitals batch(es): %s; retrying", work.size(),
                 st.message());
        if (stopping) return;  // no ack: the DPs send them again
        absl::MutexLock lock(&mu_);
        for (auto it = work.rbegin(); it != work.rend(); ++it) {
          queued_bytes_ += it->bytes;
          queue_.push_front(std::move(*it));
        }
        oldest_queued_ms_ = steadyMs(queue_.front().queued);
        failures++;
        const absl::Duration backoff =
            std::min(absl::Seconds(5), absl::Milliseconds(200) * (1 << std::min(failures, 5u)));
        mu_.AwaitWithTimeout(absl::Condition(&stop_), backoff);
        continue;
      }
      failures = 0;
      writes_++;
      rows_ += stats.rows;
      for (size_t i = 0; i < work.size(); ++i) {
        sync::v1::VitalsAck ack;
        ack.set_seq(work[i].batch->seq());
        switch (results[i].outcome) {
          case Outcome::kStored:
            stored_++;
            ack.set_result(sync::v1::VitalsAck::STORED);
            break;
          case Outcome::kDuplicate:
            duplicates_++;
            ack.set_result(sync::v1::VitalsAck::DUPLICATE);
            break;
          case Outcome::kRefused:
            countRefused(results[i].reason.substr(0, results[i].reason.find(':')));
            LOG_WARN(kLog, "refusing vitals batch %d of node %s: %s", work[i].batch->seq(),
                     work[i].node_id, results[i].reason);
            ack.set_result(sync::v1::VitalsAck::REFUSED);
            ack.set_reason(results[i].reason);
            break;
        }
        work[i].done(ack);
      }
    }
    if (stopping) {
      absl::MutexLock lock(&mu_);
      if (queue_.empty()) return;
      continue;  // drain what queued meanwhile
    }
    if (absl::Now() >= next_rollup) {
      next_rollup = absl::Now() + absl::Seconds(options_.rollup_interval_s);
      auto rows = rollUp(pool_, static_cast<int64_t>(std::time(nullptr)), options_.rollup_grace_s);
      if (rows.ok()) {
        rows_ += *rows;
      } else {
        LOG_WARN(kLog, "vitals rollup failed: %s", rows.status().message());
      }
    }
    if (absl::Now() >= next_retention) {
      next_retention = absl::Now() + absl::Seconds(options_.retention_interval_s);
      auto deleted = enforceRetention(pool_, static_cast<int64_t>(std::time(nullptr)),
                                      options_.retention_interval_s);
      if (deleted.ok()) {
        retention_rows_ += *deleted;
      } else {
        LOG_WARN(kLog, "vitals retention failed: %s", deleted.status().message());
      }
    }
  }
}

void VitalsIngest::writeMetrics(metrics::Writer& w) const {
  const int64_t oldest = oldest_queued_ms_.load();
  w.gauge("portico_cp_vitals_ingest_lag_seconds",
          "Age of the oldest vitals batch waiting to be stored (0: none waiting).",
          oldest == 0 ? 0.0 : static_cast<double>(steadyMs() - oldest) / 1000.0);
  {
    absl::MutexLock lock(&mu_);
    w.gauge("portico_cp_vitals_queue_batches", "Vitals batches waiting to be stored.",
            static_cast<double>(queue_.size()));
    w.gauge("portico_cp_vitals_queue_bytes", "Serialized bytes of the vitals batches waiting.",
            static_cast<double>(queued_bytes_));
    w.beginCounter("portico_cp_vitals_batches_total",
                   "Vitals batches by result: stored, duplicate (stored before), refused "
                   "(garbage), retry (backlog).");
    w.sample(static_cast<double>(stored_.load()), {{"result", "stored"}});
    w.sample(static_cast<double>(duplicates_.load()), {{"result", "duplicate"}});
    uint64_t refused = 0;
    for (const auto& [reason, n] : refused_) refused += n;
    w.sample(static_cast<double>(refused), {{"result", "refused"}});
    w.sample(static_cast<double>(retries_.load()), {{"result", "retry"}});
    w.beginCounter("portico_cp_vitals_refused_total", "Vitals batches refused, by reason.");
    for (const auto& [reason, n] : refused_) {
      w.sample(static_cast<double>(n), {{"reason", reason}});
    }
  }
  w.counter("portico_cp_vitals_rows_total",
            "Vitals rows inserted or updated (every granularity, requests and nodes).",
            static_cast<double>(rows_.load()));
  w.counter("portico_cp_vitals_writes_total", "Vitals write transactions committed.",
            static_cast<double>(writes_.load()));
  w.counter("portico_cp_vitals_write_failures_total",
            "Vitals write transactions that failed (retried).",
            static_cast<double>(write_failures_.load()));
  w.counter("portico_cp_vitals_retention_deleted_rows_total",
            "Vitals rows deleted by the retention job on this control plane.",
            static_cast<double>(retention_rows_.load()));
  w.beginHistogram("portico_cp_vitals_write_seconds", "Time of one vitals write transaction.");
  write_seconds_.write(w);
}

}  // namespace portico::cp::vitals
