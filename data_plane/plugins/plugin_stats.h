// Process-wide counters a plugin keeps about itself (bodies passed through unedited, log
// entries dropped), listed on the DP's /metrics by the status listener. A counter is a static
// object in the plugin's own file; bumping it is one relaxed atomic add, so it may sit on the
// hot path of every worker.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/metrics/metrics.h"

namespace portico::dp::plugins {

class PluginCounter {
 public:
  // `name` and `help` must outlive the process (string literals). Registered on construction.
  PluginCounter(const char* name, const char* help);
  PluginCounter(const PluginCounter&) = delete;
  PluginCounter& operator=(const PluginCounter&) = delete;

  void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  friend void appendPluginCounters(metrics::Writer* w);
  const char* name_;
  const char* help_;
  std::atomic<uint64_t> value_{0};
  PluginCounter* next_ = nullptr;
};

// Every registered counter, in registration order reversed (for the status listener).
void appendPluginCounters(metrics::Writer* w);

}  // namespace portico::dp::plugins
