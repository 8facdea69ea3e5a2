// Target health for the balancer: Kong's `healthchecks` record (parsed from the JSON text the
// snapshot carries), per-address health shared by every worker through one atomic word, and the
// HealthChecker: the component that owns health state across snapshot swaps and runs active
// HTTP/HTTPS/TCP probes on a thread of its own.
#pragma once

#include <atomic>
#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace portico::dp::balancer {

// Thresholds of one source (active probes or passive observation of proxied traffic). A zero
// threshold disables that counter, as in Kong.
struct HealthThresholds {
  std::bitset<1000> healthy_statuses;
  std::bitset<1000> unhealthy_statuses;
  uint32_t successes = 0;
  uint32_t http_failures = 0;
  uint32_t tcp_failures = 0;
  uint32_t timeouts = 0;
  bool any() const { return successes + http_failures + tcp_failures + timeouts > 0; }
};

// Kong's upstream.healthchecks, with Kong's defaults for everything absent.
struct HealthConfig {
  struct Active {
    std::string type = "http";  // tcp, http, https (grpc/grpcs probe like tcp)
    uint32_t timeout_ms = 1000;
    uint32_t concurrency = 10;
    std::string http_path = "/";
    std::string https_sni;  // "" = the target's hostname
    bool https_verify_certificate = true;
    std::vector<std::pair<std::string, std::string>> headers;
    uint32_t healthy_interval_ms = 0;    // 0 = healthy targets are not probed
    uint32_t unhealthy_interval_ms = 0;  // 0 = unhealthy targets are not probed
    HealthThresholds thresholds;
  } active;
  HealthThresholds passive;
  double threshold = 0;  // % of healthy weight below which the whole upstream is unavailable

  bool activeEnabled() const {
    return active.healthy_interval_ms > 0 || active.unhealthy_interval_ms > 0;
  }
  bool passiveEnabled() const { return passive.any(); }
  bool enabled() const { return activeEnabled() || passiveEnabled(); }

  // Parses the record's JSON text ("" = all defaults). Fails (kInvalidArgument, naming the
  // field) on a value of the wrong type.
  static absl::StatusOr<HealthConfig> parse(std::string_view json);
};

// What a proxied attempt or a probe observed.
enum class HealthEvent : uint8_t { kSuccess, kHttpFailure, kTcpFailure, kTimeout };

// One resolved address of one target (hostname|ip|port). Read by every worker on every pick
// (one relaxed load); written by workers (passive) and the checker thread (active) with CAS.
class AddressHealth {
 public:
  AddressHealth(std::string hostname, std::string ip, uint16_t port)
      : hostname_(std::move(hostname)), ip_(std::move(ip)), port_(port) {}

  bool healthy() const { return (bits_.load(std::memory_order_relaxed) & kUnhealthy) == 0; }
  // Counts `event` against `t` (Kong's counters: consecutive events of one kind flip the state
  // at their threshold; an opposite event resets them). Returns true if the state flipped.
  bool record(HealthEvent event, uint32_t status, const HealthThresholds& t);
  // Sets the state (and clears the counters), as Kong's /targets/{t}/healthy|unhealthy do.
  void set(bool healthy) { bits_.store(healthy ? 0 : kUnhealthy, std::memory_order_relaxed); }

  const std::string& hostname() const { return hostname_; }
  const std::string& ip() const { return ip_; }
  uint16_t port() const { return port_; }

  // Checker thread only.
  uint64_t next_probe_ms = 0;
  bool probing = false;

 private:
  // bits 0-7 successes, 8-15 http failures, 16-23 tcp failures, 24-31 timeouts, bit 32 unhealthy.
  static constexpr uint64_t kUnhealthy = uint64_t{1} << 32;
  const std::string hostname_;
  const std::string ip_;
  const uint16_t port_;
  alignas(64) std::atomic<uint64_t> bits_{0};
};
using AddressHealthSharedPtr = std::shared_ptr<AddressHealth>;

// The health of one upstream's addresses under one healthchecks config. Outlives snapshots:
// the next snapshot with the same upstream id and healthchecks gets the same object back.
class UpstreamHealth {
 public:
  UpstreamHealth(std::string upstream_id, std::string name, HealthConfig config)
      : upstream_id_(std::move(upstream_id)), name_(std::move(name)), config_(std::move(config)) {}

  const std::string& upstreamId() const { return upstream_id_; }
  const std::string& name() const { return name_; }
  const HealthConfig& config() const { return config_; }

  // Config or resolver thread: the entry for an address, created healthy if new.
  AddressHealthSharedPtr address(const std::string& hostname, const std::string& ip,
                                 uint16_t port);
  // Checker thread: every address some balancer table still uses (forgets the others).
  std::vector<AddressHealthSharedPtr> liveAddresses();

  // Checker thread only.
  uint32_t probes_in_flight = 0;

 private:
  const std::string upstream_id_;
  const std::string name_;
  const HealthConfig config_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, AddressHealthSharedPtr> by_key_ ABSL_GUARDED_BY(mu_);
};
using UpstreamHealthSharedPtr = std::shared_ptr<UpstreamHealth>;

// Owns health state across snapshot swaps and probes actively on its own thread (an asio
// io_context of its own; never a proxy worker).
class HealthChecker {
 public:
  HealthChecker();
  ~HealthChecker();  // stops and joins the probe thread
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Config thread. The UpstreamHealth for this upstream and healthchecks text: the live one if
  // a current snapshot already has it, else a new one (all healthy).
  UpstreamHealthSharedPtr acquire(const std::string& upstream_id, const std::string& name,
                                  const std::string& healthchecks_text,
                                  const HealthConfig& config);

  uint64_t probesSent() const { return probes_.load(std::memory_order_relaxed); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<uint64_t> probes_{0};
};

}  // namespace portico::dp::balancer
