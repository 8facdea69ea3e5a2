// Proxy counters: one shard per worker, written only by that worker (plain load+store, no
// RMW), read by the status listener, which sums the shards on scrape.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace portico::dp {

struct alignas(64) WorkerStats {
  using Counter = std::atomic<uint64_t>;
  Counter connections_accepted{0};
  Counter connections_active{0};  // gauge
  // Gauges, nginx's stub_status states: reading a request head, processing a request (body,
  // upstream, response). The rest of the active connections are waiting (idle keep-alive).
  Counter connections_reading{0};
  Counter connections_writing{0};
  Counter requests_total{0};
  Counter responses_by_class[6] = {};  // index status/100 (0 unused)
  Counter no_route_total{0};
  Counter bad_requests_total{0};
  Counter upstream_connects_total{0};
  Counter upstream_reused_total{0};
  Counter upstream_connect_errors_total{0};
  Counter upstream_timeouts_total{0};
  Counter upstream_bad_responses_total{0};
  Counter bytes_received_total{0};  // from clients
  Counter bytes_sent_total{0};      // to clients
  Counter upstream_retries_total{0};     // further tries after a connect failure/timeout
  Counter upstream_tls_errors_total{0};  // upstream TLS handshake/verification failures
  Counter tls_handshake_errors_total{0}; // client TLS handshakes that failed
  Counter upgraded_total{0};             // 101 Switching Protocols relayed (WebSocket)

  // Single-writer increment: a plain load and store, cheaper than fetch_add on the hot path.
  static void inc(Counter& c, uint64_t by = 1) {
    c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }
  static void dec(Counter& c) { c.store(c.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed); }
};

// Sum of every worker's shard at one moment (each field read independently).
struct ProxyTotals {
  uint64_t connections_accepted = 0;
  uint64_t connections_active = 0;
  uint64_t connections_reading = 0;
  uint64_t connections_writing = 0;
  uint64_t requests_total = 0;
  uint64_t responses_by_class[6] = {};
  uint64_t no_route_total = 0;
  uint64_t bad_requests_total = 0;
  uint64_t upstream_connects_total = 0;
  uint64_t upstream_reused_total = 0;
  uint64_t upstream_connect_errors_total = 0;
  uint64_t upstream_timeouts_total = 0;
  uint64_t upstream_bad_responses_total = 0;
  uint64_t bytes_received_total = 0;
  uint64_t bytes_sent_total = 0;
  uint64_t upstream_retries_total = 0;
  uint64_t upstream_tls_errors_total = 0;
  uint64_t tls_handshake_errors_total = 0;
  uint64_t upgraded_total = 0;
};

class ProxyStats {
 public:
  explicit ProxyStats(size_t workers) : shards_(new WorkerStats[workers]), n_(workers) {}
  WorkerStats& shard(size_t i) { return shards_[i]; }
  size_t size() const { return n_; }
  ProxyTotals totals() const;

 private:
  std::unique_ptr<WorkerStats[]> shards_;
  size_t n_;
};

inline ProxyTotals ProxyStats::totals() const {
  ProxyTotals t;
  auto get = [](const WorkerStats::Counter& c) { return c.load(std::memory_order_relaxed); };
  for (size_t i = 0; i < n_; ++i) {
    const WorkerStats& s = shards_[i];
    t.connections_accepted += get(s.connections_accepted);
    t.connections_active += get(s.connections_active);
    t.connections_reading += get(s.connections_reading);
    t.connections_writing += get(s.connections_writing);
    t.requests_total += get(s.requests_total);
    for (int k = 0; k < 6; ++k) {
      t.responses_by_class[k] += get(s.responses_by_class[k]);
    }
    t.no_route_total += get(s.no_route_total);
    t.bad_requests_total += get(s.bad_requests_total);
    t.upstream_connects_total += get(s.upstream_connects_total);
    t.upstream_reused_total += get(s.upstream_reused_total);
    t.upstream_connect_errors_total += get(s.upstream_connect_errors_total);
    t.upstream_timeouts_total += get(s.upstream_timeouts_total);
    t.upstream_bad_responses_total += get(s.upstream_bad_responses_total);
    t.bytes_received_total += get(s.bytes_received_total);
    t.bytes_sent_total += get(s.bytes_sent_total);
    t.upstream_retries_total += get(s.upstream_retries_total);
    t.upstream_tls_errors_total += get(s.upstream_tls_errors_total);
    t.tls_handshake_errors_total += get(s.tls_handshake_errors_total);
    t.upgraded_total += get(s.upgraded_total);
  }
  return t;
}

}  // namespace portico::dp
