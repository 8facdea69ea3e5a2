#include "data_plane/plugins/plugin_stats.h"

namespace portico::dp::plugins {
namespace {

// Counters are constructed during static initialization (one thread) and never destroyed, so
// the list needs no lock: scrapes only read it.
std::atomic<PluginCounter*>& head() {
  static std::atomic<PluginCounter*> h{nullptr};
  return h;
}

}  // namespace

PluginCounter::PluginCounter(const char* name, const char* help) : name_(name), help_(help) {
  next_ = head().load(std::memory_order_relaxed);
  while (!head().compare_exchange_weak(next_, this, std::memory_order_release,
                                       std::memory_order_relaxed)) {
  }
}

void appendPluginCounters(metrics::Writer* w) {
  for (PluginCounter* c = head().load(std::memory_order_acquire); c != nullptr; c = c->next_) {
    w->counter(c->name_, c->help_, static_cast<double>(c->value()));
  }
}

}  // namespace portico::dp::plugins
