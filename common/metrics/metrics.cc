#include "common/metrics/metrics.h"

#include <prometheus/text_serializer.h>

#include <limits>

namespace portico::metrics {

void Writer::begin(const std::string& name, const std::string& help,
                   prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  families_.push_back(std::move(f));
}

void Writer::beginCounter(const std::string& name, const std::string& help) {
  begin(name, help, prometheus::MetricType::Counter);
}

void Writer::beginGauge(const std::string& name, const std::string& help) {
  begin(name, help, prometheus::MetricType::Gauge);
}

void Writer::sample(double value, const Labels& labels) {
  prometheus::MetricFamily& f = families_.back();
  prometheus::ClientMetric m;
  for (const auto& [k, v] : labels) {
    m.label.push_back({k, v});
  }
  if (f.type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
}

void Writer::beginHistogram(const std::string& name, const std::string& help) {
  begin(name, help, prometheus::MetricType::Histogram);
}

void Writer::histogramSample(const std::vector<double>& bounds,
                             const std::vector<uint64_t>& counts, double sum,
                             const Labels& labels) {
  prometheus::MetricFamily& f = families_.back();
  prometheus::ClientMetric m;
  for (const auto& [k, v] : labels) {
    m.label.push_back({k, v});
  }
  uint64_t cumulative = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    prometheus::ClientMetric::Bucket b;
    b.upper_bound = i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity();
    b.cumulative_count = cumulative;
    m.histogram.bucket.push_back(b);
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = sum;
  f.metric.push_back(std::move(m));
}

void Writer::counter(const std::string& name, const std::string& help, double value,
                     const Labels& labels) {
  beginCounter(name, help);
  sample(value, labels);
}

void Writer::gauge(const std::string& name, const std::string& help, double value,
                   const Labels& labels) {
  beginGauge(name, help);
  sample(value, labels);
}

std::string Writer::text() const { return prometheus::TextSerializer().Serialize(families_); }

}  // namespace portico::metrics
