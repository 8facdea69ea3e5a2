#include "control_plane/vitals/vitals_ingest.h"

#include <algorithm>
#include <ctime>
#include <map>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/config/validate.h"
#include "common/logging.h"
#include "common/vitals/latency_bins.h"
#include "control_plane/vitals/vitals_store.h"

namespace portico::cp::vitals {
namespace {

constexpr char kVitalsLog[] = "vitals";
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
  if (batch.first_unacked_seq() > batch.seq()) {
    return absl::StrCat("bad_sequence: first_unacked_seq ", batch.first_unacked_seq(),
                        " is above seq ", batch.seq());
  }
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
    : options_(std::move(options)), pool_(options_.dsn, 2), open_(std::make_unique<OpenWindow>()) {}

VitalsIngest::~VitalsIngest() { stop(); }

void VitalsIngest::start() {
  fold_thread_ = std::thread([this] { foldLoop(); });
  write_thread_ = std::thread([this] { writeLoop(); });
}

void VitalsIngest::stop() {
  {
    absl::MutexLock lock(&inbox_mu_);
    stop_ = true;
  }
  if (fold_thread_.joinable()) fold_thread_.join();
  if (write_thread_.joinable()) write_thread_.join();
}

sync::v1::VitalsSettings VitalsIngest::settings() const {
  sync::v1::VitalsSettings s;
  s.set_flush_interval_ms(options_.flush_interval_ms);
  s.set_top_consumers(options_.top_consumers);
  s.set_max_batch_buckets(options_.max_batch_buckets);
  return s;
}

void VitalsIngest::countRefused(const std::string& reason) {
  absl::MutexLock lock(&refused_mu_);
  refused_[reason]++;
}

void VitalsIngest::submit(std::string group, std::string node_id, std::string instance,
                          std::shared_ptr<const sync::v1::VitalsBatch> batch, Done done) {
  sync::v1::VitalsAck ack;
  ack.set_seq(batch->seq());
  {
    absl::MutexLock lock(&inbox_mu_);
    // Bounded by count and by bytes: a backlog of full batches (~1 MB each) must not grow
    // the control plane's memory without end; past either bound the DP sends it later.
    const size_t bytes = batch->ByteSizeLong();
    if (!stop_ && inbox_.size() < options_.max_queue_batches &&
        (inbox_.empty() || inbox_bytes_ + bytes <= options_.max_queue_bytes)) {
      inbox_bytes_ += bytes;
      inbox_.push_back(Pending{std::move(group), std::move(node_id), std::move(instance),
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

void VitalsIngest::answer(std::vector<Answer>& answers, sync::v1::VitalsAck::Result result,
                          const std::string& reason) {
  for (Answer& a : answers) {
    if (result != sync::v1::VitalsAck::RESULT_UNSPECIFIED) {
      a.ack.set_result(result);
      a.ack.set_reason(reason);
    }
    switch (a.ack.result()) {
      case sync::v1::VitalsAck::STORED: stored_++; break;
      case sync::v1::VitalsAck::DUPLICATE: duplicates_++; break;
      case sync::v1::VitalsAck::RETRY: retries_++; break;
      default: break;
    }
    a.done(a.ack);
  }
}

void VitalsIngest::retry(Pending& p, const std::string& reason) {
  std::vector<Answer> one;
  one.push_back(Answer{std::move(p.done), {}});
  one.back().ack.set_seq(p.batch->seq());
  answer(one, sync::v1::VitalsAck::RETRY, reason);
}

void VitalsIngest::refuse(Pending& p, const std::string& reason) {
  countRefused(reason.substr(0, reason.find(':')));
  LOG_WARN(kVitalsLog, "refusing vitals batch %d of node %s: %s", p.batch->seq(), p.node_id, reason);
  sync::v1::VitalsAck ack;
  ack.set_seq(p.batch->seq());
  ack.set_result(sync::v1::VitalsAck::REFUSED);
  ack.set_reason(reason);
  p.done(ack);
}

bool VitalsIngest::checkEntities(const std::string& group, const sync::v1::VitalsBatch& batch,
                                 std::string* refusal) {
  const int64_t now = steadyMs();
  if (now - entities_since_ms_ >= options_.entity_cache_s * 1000) {
    entities_.clear();  // deleted entities stop being accepted after at most this long
    entities_since_ms_ = now;
  }
  GroupIds& known = entities_[group];
  struct Kind {
    const char* table;
    const char* field;
    const char* what;
    absl::flat_hash_set<std::string>* known;
    const std::string& (sync::v1::VitalsBucket::*id)() const;
  };
  const Kind kinds[] = {
      {"services", "service_id", "service", &known.services, &sync::v1::VitalsBucket::service_id},
      {"routes", "route_id", "route", &known.routes, &sync::v1::VitalsBucket::route_id},
      {"consumers", "consumer_id", "consumer", &known.consumers,
       &sync::v1::VitalsBucket::consumer_id}};
  for (const Kind& kind : kinds) {
    absl::flat_hash_set<std::string_view> missing;
    for (const auto& b : batch.buckets()) {
      const std::string& id = (b.*kind.id)();
      if (!id.empty() && id != "*" && !kind.known->contains(id)) missing.insert(id);
    }
    if (missing.empty()) continue;
    auto found = existingIds(pool_, kind.table, group,
                             std::vector<std::string>(missing.begin(), missing.end()));
    if (!found.ok()) {
      LOG_WARN(kVitalsLog, "cannot look up vitals %s: %s", kind.table, found.status().message());
      return false;
    }
    for (std::string& id : *found) kind.known->insert(std::move(id));
    for (int j = 0; j < batch.buckets_size(); ++j) {
      const std::string& id = (batch.buckets(j).*kind.id)();
      if (!id.empty() && id != "*" && !kind.known->contains(id)) {
        *refusal = absl::StrCat("unknown_entity: buckets.", j, ".", kind.field, " ", id,
                                " is not a ", kind.what, " of control plane ", group);
        return true;
      }
    }
  }
  return true;
}

void VitalsIngest::fold(Pending p) {
  // Its shape first, here rather than on the cluster thread that parsed it (which is the
  // busiest one while a fleet's flush comes in).
  const std::string problem = validateBatch(*p.batch, static_cast<int64_t>(std::time(nullptr)),
                                            options_.max_batch_buckets);
  if (!problem.empty()) {
    refuse(p, problem);
    return;
  }
  const uint64_t seq = p.batch->seq();
  const uint64_t first_unacked = p.batch->first_unacked_seq();
  const Sender sender{p.node_id, p.instance};
  const int64_t now = steadyMs();
  enum class Verdict { kFold, kDuplicate, kRetry };
  // In seq order per sender: a seq already added is a duplicate (answered once what it
  // duplicates is stored); one above a seq still missing waits for it (the DP holds the missing
  // one and sends it first after the RETRY), unless the DP says everything below it was
  // answered or dropped (first_unacked_seq).
  const auto decide = [&](const SenderSeqs& s, std::string* why) {
    if (seq <= s.folded) return Verdict::kDuplicate;
    if (first_unacked != 0 && seq != s.folded + 1 && first_unacked != seq) {
      *why = absl::StrCat("out of order: batch ", s.folded + 1, " of this sender is not stored "
                          "yet; send from the oldest one held");
      return Verdict::kRetry;
    }
    return Verdict::kFold;
  };

  // 1. The sender's stored seq: from PostgreSQL the first time (or after a conflict).
  bool cached;
  {
    absl::MutexLock lock(&window_mu_);
    cached = senders_.contains(sender);
  }
  if (!cached) {
    auto stored = storedSeq(pool_, p.node_id, p.instance);
    if (!stored.ok()) {
      retry(p, "cannot read the stored sequence; send it again later");
      return;
    }
    absl::MutexLock lock(&window_mu_);
    senders_.try_emplace(sender, SenderSeqs{*stored, *stored, now});
  }

  // 2. Sequence.
  uint64_t epoch;
  {
    std::string why;
    absl::ReleasableMutexLock lock(&window_mu_);
    SenderSeqs& s = senders_[sender];
    s.used_ms = now;
    epoch = reset_epoch_;
    switch (decide(s, &why)) {
      case Verdict::kDuplicate: {
        Answer a{std::move(p.done), {}};
        a.ack.set_seq(seq);
        a.ack.set_result(sync::v1::VitalsAck::DUPLICATE);
        if (seq > s.committed) {
          // Answered when the window holding it commits: the open one commits after it.
          if (open_->answers.empty()) open_->oldest_ms = steadyMs(p.queued);
          open_->answers.push_back(std::move(a));
          return;
        }
        std::vector<Answer> now_answers;
        now_answers.push_back(std::move(a));
        lock.Release();
        answer(now_answers, sync::v1::VitalsAck::RESULT_UNSPECIFIED);
        return;
      }
      case Verdict::kRetry:
        lock.Release();
        retry(p, why);
        return;
      case Verdict::kFold:
        break;
    }
  }

  // 3. Entities, without the lock (it may ask PostgreSQL).
  std::string refusal;
  if (!checkEntities(p.group, *p.batch, &refusal)) {
    retry(p, "cannot look up entities; send it again later");
    return;
  }
  absl::ReleasableMutexLock lock(&window_mu_);
  if (epoch != reset_epoch_) {  // a conflict reset the senders meanwhile: decide afresh later
    lock.Release();
    retry(p, "the control plane is re-reading stored sequences; send it again later");
    return;
  }
  SenderSeqs& s = senders_[sender];
  if (!refusal.empty()) {
    s.folded = std::max(s.folded, seq);  // never sent again: later seqs need not wait for it
    lock.Release();
    refuse(p, refusal);
    return;
  }
  if (open_->data.rows() >= options_.max_window_rows) {
    lock.Release();
    retry(p, "ingest backlog: the control plane is behind; send it again later");
    return;
  }
  // 4. Add it up; the parsed batch goes when `p` does.
  open_->data.add(p.group, p.node_id, p.instance, *p.batch);
  s.folded = seq;
  if (open_->answers.empty()) open_->oldest_ms = steadyMs(p.queued);
  open_->last_ms = steadyMs();
  if (open_->opened_ms == 0) open_->opened_ms = open_->last_ms;
  Answer a{std::move(p.done), {}};
  a.ack.set_seq(seq);
  a.ack.set_result(sync::v1::VitalsAck::STORED);
  open_->answers.push_back(std::move(a));
  window_rows_ = open_->data.rows();
}

void VitalsIngest::foldLoop() {
  for (;;) {
    Pending p;
    {
      absl::MutexLock lock(&inbox_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(inbox_mu_) {
        return stop_ || !inbox_.empty();
      };
      inbox_mu_.Await(absl::Condition(&ready));
      if (inbox_.empty()) break;  // stopping, and everything queued was folded
      p = std::move(inbox_.front());
      inbox_.pop_front();
    }
    const size_t bytes = p.bytes;
    fold(std::move(p));
    {
      absl::MutexLock lock(&inbox_mu_);
      inbox_bytes_ -= bytes;  // counted until the parsed batch is gone
    }
    // Senders idle for 10 min with nothing pending are forgotten (read again if they return).
    const int64_t now = steadyMs();
    if (now - senders_swept_ms_ >= 60'000) {
      senders_swept_ms_ = now;
      absl::MutexLock lock(&window_mu_);
      std::erase_if(senders_, [&](const auto& e) {
        return e.second.folded == e.second.committed && now - e.second.used_ms > 600'000;
      });
    }
  }
  absl::MutexLock lock(&window_mu_);
  fold_done_ = true;
}

void VitalsIngest::writeLoop() {
  absl::Time next_retention = absl::Now() + absl::Seconds(5);
  absl::Time next_rollup = absl::Now() + absl::Seconds(1);
  const auto jobsAt = [&] {
    absl::Time at = absl::InfiniteFuture();
    if (options_.rollup_interval_s > 0) at = std::min(at, next_rollup);
    if (options_.retention_interval_s > 0) at = std::min(at, next_retention);
    return at;
  };
  uint32_t failures = 0;
  std::unique_ptr<OpenWindow> writing;  // kept across failed attempts
  for (;;) {
    bool last = false;
    if (writing == nullptr) {
      absl::MutexLock lock(&window_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(window_mu_) {
        return fold_done_ || !open_->answers.empty();
      };
      window_mu_.AwaitWithDeadline(absl::Condition(&ready), jobsAt());
      // Let more DPs' batches join while they keep coming (see IngestOptions::coalesce_ms).
      while (!open_->answers.empty() && !fold_done_ && open_->opened_ms != 0 &&
             open_->data.rows() < options_.max_window_rows / 2) {
        const int64_t now = steadyMs();
        const int64_t wait_ms =
            std::min(open_->last_ms + options_.coalesce_ms, open_->opened_ms + options_.max_window_ms) -
            now;
        if (wait_ms <= 0) break;
        window_mu_.AwaitWithTimeout(absl::Condition(&fold_done_), absl::Milliseconds(wait_ms));
      }
      last = fold_done_;
      if (!open_->answers.empty()) {
        writing = std::exchange(open_, std::make_unique<OpenWindow>());
        writing_oldest_ms_ = writing->oldest_ms;
        window_rows_ = 0;
      }
    } else {
      absl::MutexLock lock(&window_mu_);
      last = fold_done_;
    }
    if (writing != nullptr) {
      WriteResult result;
      const auto t0 = std::chrono::steady_clock::now();
      const absl::Status st = writeWindow(pool_, writing->data, &result);
      write_seconds_.observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (!st.ok()) {
        write_failures_++;
        LOG_WARN(kVitalsLog, "cannot store a window of %d vitals batch(es): %s; retrying",
                 writing->data.batches(), st.message());
        if (last) return;  // no ack: the DPs send them again
        failures++;
        const absl::Duration backoff =
            std::min(absl::Seconds(5), absl::Milliseconds(200) * (1 << std::min(failures, 5u)));
        absl::MutexLock lock(&window_mu_);
        window_mu_.AwaitWithTimeout(absl::Condition(&fold_done_), backoff);
        continue;
      }
      failures = 0;
      std::vector<Answer> answers = std::move(writing->answers);
      if (!result.conflicts.empty()) {
        // Another replica stored some of these batches: which ones is lost in the sums, so
        // the whole window, and the one filling (it may hold later seqs of those senders),
        // is sent again and decided afresh against what is stored.
        conflicts_++;
        LOG_WARN(kVitalsLog, "%d vitals sender(s), first node %s, were stored by another control "
                 "plane meanwhile; %d batch(es) will be sent again",
                 result.conflicts.size(), result.conflicts.front().first, answers.size());
        {
          absl::MutexLock lock(&window_mu_);
          for (Answer& a : open_->answers) answers.push_back(std::move(a));
          open_ = std::make_unique<OpenWindow>();
          senders_.clear();
          reset_epoch_++;
          writing_oldest_ms_ = 0;
          window_rows_ = 0;
        }
        writing.reset();
        answer(answers, sync::v1::VitalsAck::RETRY,
               "stored in part by another control plane; send it again");
        continue;
      }
      writes_++;
      rows_ += result.rows;
      {
        absl::MutexLock lock(&window_mu_);
        for (const auto& [sender, range] : writing->data.senders()) {
          auto it = senders_.find(sender);
          if (it != senders_.end()) it->second.committed = std::max(it->second.committed, range.max);
        }
        writing_oldest_ms_ = 0;
      }
      writing.reset();
      answer(answers, sync::v1::VitalsAck::RESULT_UNSPECIFIED);
    }
    if (last) {
      absl::MutexLock lock(&window_mu_);
      if (open_->answers.empty()) return;
      continue;  // write what was folded meanwhile
    }
    if (options_.rollup_interval_s > 0 && absl::Now() >= next_rollup) {
      next_rollup = absl::Now() + absl::Seconds(options_.rollup_interval_s);
      auto rows = rollUp(pool_, static_cast<int64_t>(std::time(nullptr)), options_.rollup_grace_s);
      if (rows.ok()) {
        rows_ += *rows;
      } else {
        LOG_WARN(kVitalsLog, "vitals rollup failed: %s", rows.status().message());
      }
    }
    if (options_.retention_interval_s > 0 && absl::Now() >= next_retention) {
      next_retention = absl::Now() + absl::Seconds(options_.retention_interval_s);
      auto deleted = enforceRetention(pool_, static_cast<int64_t>(std::time(nullptr)),
                                      options_.retention_interval_s);
      if (deleted.ok()) {
        retention_rows_ += *deleted;
      } else {
        LOG_WARN(kVitalsLog, "vitals retention failed: %s", deleted.status().message());
      }
    }
  }
}

void VitalsIngest::writeMetrics(metrics::Writer& w) const {
  // The oldest batch not answered yet: queued, in the open window or in the one being written.
  int64_t oldest = 0;
  const auto older = [&](int64_t ms) {
    if (ms != 0 && (oldest == 0 || ms < oldest)) oldest = ms;
  };
  {
    absl::MutexLock lock(&window_mu_);
    older(writing_oldest_ms_);
    if (!open_->answers.empty()) older(open_->oldest_ms);
  }
  size_t queued = 0, queued_bytes = 0;
  {
    absl::MutexLock lock(&inbox_mu_);
    if (!inbox_.empty()) older(steadyMs(inbox_.front().queued));
    queued = inbox_.size();
    queued_bytes = inbox_bytes_;
  }
  w.gauge("portico_cp_vitals_ingest_lag_seconds",
          "Age of the oldest vitals batch waiting to be stored (0: none waiting).",
          oldest == 0 ? 0.0 : static_cast<double>(steadyMs() - oldest) / 1000.0);
  w.gauge("portico_cp_vitals_queue_batches", "Vitals batches waiting to be added into a window.",
          static_cast<double>(queued));
  w.gauge("portico_cp_vitals_queue_bytes", "Serialized bytes of the vitals batches waiting.",
          static_cast<double>(queued_bytes));
  w.gauge("portico_cp_vitals_window_rows",
          "Keys in the open vitals window (10 s request and node rows it will write).",
          static_cast<double>(window_rows_.load()));
  w.beginCounter("portico_cp_vitals_batches_total",
                 "Vitals batches by result: stored, duplicate (stored before), refused "
                 "(garbage), retry (backlog, or out of order).");
  w.sample(static_cast<double>(stored_.load()), {{"result", "stored"}});
  w.sample(static_cast<double>(duplicates_.load()), {{"result", "duplicate"}});
  {
    absl::MutexLock lock(&refused_mu_);
    uint64_t refused = 0;
    for (const auto& [reason, n] : refused_) refused += n;
    w.sample(static_cast<double>(refused), {{"result", "refused"}});
    w.sample(static_cast<double>(retries_.load()), {{"result", "retry"}});
    w.beginCounter("portico_cp_vitals_refused_total", "Vitals batches refused, by reason.");
    for (const auto& [reason, n] : refused_) {
      w.sample(static_cast<double>(n), {{"reason", reason}});
    }
  }
  w.counter("portico_cp_vitals_write_conflicts_total",
            "Vitals windows not written because another control plane had stored some of "
            "their batches (sent again by the DPs).",
            static_cast<double>(conflicts_.load()));
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
