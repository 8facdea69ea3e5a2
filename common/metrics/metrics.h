// Prometheus text exposition for portico-cp's /metrics (Admin listener) and portico-dp's
// status listener: a small writer over prometheus-cpp's MetricFamily and TextSerializer, so
// both binaries render the same format the same way and neither keeps a registry of live
// metric objects (each scrape reads the counters the components already keep).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/metric_family.h>

namespace portico::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Writer {
 public:
  // One-sample families.
  void counter(const std::string& name, const std::string& help, double value,
               const Labels& labels = {});
  void gauge(const std::string& name, const std::string& help, double value,
             const Labels& labels = {});
  // A family whose samples follow with sample() (e.g. one per label value).
  void beginCounter(const std::string& name, const std::string& help);
  void beginGauge(const std::string& name, const std::string& help);
  void sample(double value, const Labels& labels = {});
  // A histogram family; each histogramSample() gives the upper bounds (without +Inf), the
  // count of observations in each bucket (not cumulative; one more than the bounds, the last
  // for +Inf) and their sum.
  void beginHistogram(const std::string& name, const std::string& help);
  void histogramSample(const std::vector<double>& bounds, const std::vector<uint64_t>& counts,
                       double sum, const Labels& labels = {});

  // The text format (version 0.0.4).
  std::string text() const;

  static constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

 private:
  void begin(const std::string& name, const std::string& help, prometheus::MetricType type);

  std::vector<prometheus::MetricFamily> families_;
};

}  // namespace portico::metrics
