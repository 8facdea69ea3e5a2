#include "data_plane/vitals/vitals.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/container/flat_hash_set.h"

namespace portico::dp::vitals {
namespace {

using portico::vitals::latencyBin;

void addLatency(LatencyCounts& bins, int64_t* max, int64_t ms) {
  ms = std::max<int64_t>(0, ms);
  bins[latencyBin(ms)]++;
  *max = std::max(*max, ms);
}

void mergeBins(LatencyCounts& into, const LatencyCounts& from) {
  for (size_t i = 0; i < into.size(); ++i) into[i] += from[i];
}

void histogramProto(const LatencyCounts& bins, int64_t max, sync::v1::LatencyHistogram* out) {
  out->mutable_bins()->Reserve(static_cast<int>(bins.size()));
  for (int64_t b : bins) out->add_bins(b);
  out->set_max_ms(max);
}

}  // namespace

void Cell::add(const Sample& s) {
  requests++;
  bytes_in += static_cast<int64_t>(s.bytes_in);
  bytes_out += static_cast<int64_t>(s.bytes_out);
  const int64_t total_ms = std::max<int64_t>(0, s.total_ms);
  addLatency(total, &max_total, total_ms);
  int64_t proxy_ms = total_ms;
  if (s.upstream_ms >= 0) {
    addLatency(upstream, &max_upstream, s.upstream_ms);
    proxy_ms = std::max<int64_t>(0, total_ms - s.upstream_ms);
  }
  addLatency(proxy, &max_proxy, proxy_ms);
}

void Cell::merge(const Cell& o) {
  requests += o.requests;
  bytes_in += o.bytes_in;
  bytes_out += o.bytes_out;
  mergeBins(total, o.total);
  mergeBins(upstream, o.upstream);
  mergeBins(proxy, o.proxy);
  max_total = std::max(max_total, o.max_total);
  max_upstream = std::max(max_upstream, o.max_upstream);
  max_proxy = std::max(max_proxy, o.max_proxy);
}

void WorkerVitals::record(const Sample& s, int64_t now_s) {
  const int64_t start = now_s - now_s % kBucketSeconds;
  if (start != current_start_) {
    close();
    current_start_ = start;
  }
  const KeyView view{s.service, s.route, s.consumer, s.status};
  auto it = current_.find(view);
  if (it == current_.end()) {
    // A new key in this bucket: the only allocation, once per key per 10 s.
    it = current_.emplace(Key{std::string(s.service), std::string(s.route),
                              std::string(s.consumer), s.status},
                          Cell{})
             .first;
  }
  it->second.add(s);
}

void WorkerVitals::tick(int64_t now_s) {
  if (!current_.empty() && now_s - now_s % kBucketSeconds != current_start_) {
    close();
  }
}

void WorkerVitals::close() {
  if (current_.empty()) {
    return;
  }
  ClosedBucket bucket{current_start_, std::move(current_)};
  current_ = CellMap();
  absl::MutexLock lock(&mu_);
  closed_.push_back(std::move(bucket));
  while (closed_.size() > max_closed_) {
    closed_.pop_front();
    dropped_++;
  }
}

std::vector<ClosedBucket> WorkerVitals::takeClosed() {
  absl::MutexLock lock(&mu_);
  std::vector<ClosedBucket> out(std::make_move_iterator(closed_.begin()),
                                std::make_move_iterator(closed_.end()));
  closed_.clear();
  return out;
}

uint64_t WorkerVitals::droppedBuckets() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

void toProto(int64_t start, const Key& key, const Cell& cell, sync::v1::VitalsBucket* out) {
  out->set_start(start);
  out->set_service_id(key.service);
  out->set_route_id(key.route);
  out->set_consumer_id(key.consumer);
  out->set_status_code(key.status);
  out->set_requests(cell.requests);
  out->set_bytes_in(cell.bytes_in);
  out->set_bytes_out(cell.bytes_out);
  histogramProto(cell.total, cell.max_total, out->mutable_total());
  histogramProto(cell.upstream, cell.max_upstream, out->mutable_upstream());
  histogramProto(cell.proxy, cell.max_proxy, out->mutable_proxy());
}

Collector::Collector(size_t workers, size_t max_batches) : max_batches_(max_batches) {
  for (size_t i = 0; i < workers; ++i) {
    workers_.push_back(std::make_unique<WorkerVitals>());
  }
}

void Collector::setSettings(const Settings& s) {
  absl::MutexLock lock(&mu_);
  settings_ = s;
}

Collector::Settings Collector::settings() const {
  absl::MutexLock lock(&mu_);
  return settings_;
}

size_t Collector::collect() {
  // Merge every worker's closed buckets by start time.
  std::map<int64_t, CellMap> merged;
  for (auto& w : workers_) {
    for (ClosedBucket& b : w->takeClosed()) {
      CellMap& into = merged[b.start];
      if (into.empty()) {
        into = std::move(b.cells);
        continue;
      }
      for (auto& [key, cell] : b.cells) {
        auto [it, inserted] = into.try_emplace(key, cell);
        if (!inserted) it->second.merge(cell);
      }
    }
  }
  if (merged.empty()) {
    return 0;
  }
  const Settings s = settings();
  std::vector<sync::v1::VitalsBucket> buckets;
  for (auto& [start, cells] : merged) {
    // Top N consumers per route, by requests over every status and service of the route.
    // Anonymous ("") is not a consumer and always stays.
    absl::flat_hash_map<std::string_view, absl::flat_hash_map<std::string_view, int64_t>> per_route;
    for (const auto& [key, cell] : cells) {
      if (!key.consumer.empty()) per_route[key.route][key.consumer] += cell.requests;
    }
    absl::flat_hash_set<std::pair<std::string_view, std::string_view>> folded;
    for (auto& [route, consumers] : per_route) {
      if (consumers.size() <= s.top_consumers) continue;
      std::vector<std::pair<int64_t, std::string_view>> ranked;
      for (auto& [c, n] : consumers) ranked.emplace_back(n, c);
      // Most requests first; ties by id, so every run folds the same consumers.
      std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
      });
      for (size_t i = s.top_consumers; i < ranked.size(); ++i) {
        folded.emplace(route, ranked[i].second);
      }
    }
    CellMap others;
    for (const auto& [key, cell] : cells) {
      if (!folded.empty() && !key.consumer.empty() && folded.contains({key.route, key.consumer})) {
        Key other{key.service, key.route, "*", key.status};
        auto [it, inserted] = others.try_emplace(std::move(other), cell);
        if (!inserted) it->second.merge(cell);
        continue;
      }
      toProto(start, key, cell, &buckets.emplace_back());
    }
    for (const auto& [key, cell] : others) {
      toProto(start, key, cell, &buckets.emplace_back());
    }
  }
  const size_t per_batch = std::max<uint32_t>(1, s.max_batch_buckets);
  size_t queued = 0;
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < buckets.size(); i += per_batch) {
    auto batch = std::make_shared<sync::v1::VitalsBatch>();
    batch->set_seq(next_seq_++);
    for (size_t j = i; j < std::min(buckets.size(), i + per_batch); ++j) {
      *batch->add_buckets() = std::move(buckets[j]);
    }
    batch->set_dropped_batches(dropped_batches_);
    queue_.push_back(std::move(batch));
    batches_++;
    queued++;
    while (queue_.size() > max_batches_) {
      queue_.pop_front();
      dropped_batches_++;
    }
  }
  return queued;
}

std::vector<Collector::BatchPtr> Collector::pending() const {
  absl::MutexLock lock(&mu_);
  return {queue_.begin(), queue_.end()};
}

void Collector::acknowledge(uint64_t seq) {
  absl::MutexLock lock(&mu_);
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if ((*it)->seq() == seq) {
      queue_.erase(it);
      acknowledged_++;
      return;
    }
  }
}

Collector::Stats Collector::stats() const {
  Stats st;
  for (const auto& w : workers_) st.dropped_buckets += w->droppedBuckets();
  absl::MutexLock lock(&mu_);
  st.batches = batches_;
  st.acknowledged = acknowledged_;
  st.dropped_batches = dropped_batches_;
  st.pending = queue_.size();
  return st;
}

}  // namespace portico::dp::vitals
