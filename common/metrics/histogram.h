// A Prometheus histogram that many threads observe into without a lock: fixed upper bounds,
// one relaxed atomic per bucket, the sum kept in microunits. Written out by metrics::Writer
// at scrape time (no registry). For control-plane rates (writes, ACKs, Admin API requests);
// the proxy's per-request histograms live in per-worker state instead (prometheus plugin).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics/metrics.h"

namespace portico::metrics {

class Histogram {
 public:
  // `bounds`: increasing upper bounds, without +Inf.
  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void observe(double value);
  uint64_t count() const;
  // One sample of the family the writer began (Writer::beginHistogram).
  void write(Writer& w, const Labels& labels = {}) const;

  // Seconds: 1 ms to 60 s.
  static const std::vector<double>& secondsBounds();

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1 (+Inf last)
  std::atomic<uint64_t> sum_micro_{0};
};

}  // namespace portico::metrics
