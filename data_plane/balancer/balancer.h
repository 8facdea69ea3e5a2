// The balancer of one upstream (or of one service's plain host) in one snapshot, as Kong's:
// weighted targets whose hostnames resolve (off the hot path) to addresses, and round-robin,
// consistent-hashing (a ring of `slots`), least-connections or latency (EWMA) picking.
//
// Immutable config plus one published address Table (rebuilt on the resolver thread when DNS
// answers change, swapped atomically). Per-worker mutable state (round-robin cursor, in-flight
// counts, EWMA latencies) lives in per-thread shards, so pick() and report() take no lock and
// write no cache line another worker writes; health is shared via AddressHealth atomics.
#pragma once

#include <array>
#include <chrono>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "data_plane/balancer/health.h"
#include "data_plane/dns/resolver.h"
#include "portico/config/v1/config.pb.h"

namespace portico::dp::balancer {

// Kong's 503 body when every target is unhealthy.
inline constexpr std::string_view kMsgNoPeer = "failure to get a peer from the ring-balancer";

enum class Algorithm : uint8_t { kRoundRobin, kConsistentHashing, kLeastConnections, kLatency };
enum class HashOn : uint8_t { kNone, kConsumer, kIp, kHeader, kCookie, kPath, kQueryArg, kUriCapture };

struct TargetSpec {
  std::string host;  // hostname or IP literal (no brackets)
  uint16_t port = 8000;
  uint32_t weight = 100;  // 0 = disabled
};

struct BalancerConfig {
  std::string name;         // upstream name, or the service's host
  std::string upstream_id;  // "" for a service's plain host
  Algorithm algorithm = Algorithm::kRoundRobin;
  HashOn hash_on = HashOn::kNone;
  HashOn hash_fallback = HashOn::kNone;
  std::string hash_on_header, hash_fallback_header;
  std::string hash_on_cookie, hash_on_cookie_path = "/";
  std::string hash_on_query_arg, hash_fallback_query_arg;
  std::string hash_on_uri_capture, hash_fallback_uri_capture;
  uint32_t slots = 10000;
  std::optional<std::string> host_header;  // upstream.host_header
  bool https = false;                      // the service's scheme (for the Host header's port)
  std::vector<TargetSpec> targets;
  HealthConfig health;
  std::string healthchecks_text;  // identity of the health state across snapshots

  // From Kong's entities: the upstream and its targets. Fails (kInvalidArgument) on a target
  // or healthchecks record it cannot use.
  static absl::StatusOr<BalancerConfig> fromUpstream(
      const config::v1::Upstream& upstream,
      const std::vector<const config::v1::Target*>& targets);
  // A service whose host names no upstream: one target, the host itself.
  static BalancerConfig forHost(const std::string& host, uint16_t port, bool https);
};

// What the consistent hash can be computed from. Implemented by the proxy over the request it
// is serving; every view must stay valid during pick(). Called on the worker, never stored.
class RequestInputs {
 public:
  virtual ~RequestInputs() = default;
  virtual std::string_view clientIp() const = 0;
  virtual std::string_view path() const = 0;   // without the query
  virtual std::string_view query() const = 0;  // without '?'
  // The first value of a header (case-insensitive name), "" when absent.
  virtual std::string_view header(std::string_view name) const = 0;
  virtual std::string_view consumerId() const { return {}; }
  virtual std::string_view uriCapture(std::string_view name) const { return {}; }
};

// Where to send one attempt. Owned by the caller and reused across requests (assignment keeps
// capacity, so a warm session allocates nothing here).
struct Endpoint {
  std::string address;  // IP literal
  uint16_t port = 0;
  std::string pool_key;     // "address|port", the worker pools' key
  std::string host_header;  // Host for the upstream request (unless preserve_host)
  std::string set_cookie;   // hash_on=cookie and the client had none: Set-Cookie value to add
};

class Balancer;
struct Table;
struct Shard;
struct Held;

// One attempt against one address. Ends (least-connections / latency bookkeeping) when destroyed
// or reset. Must be ended on the worker that picked it; move-only.
class Lease {
 public:
  Lease() = default;
  ~Lease() { reset(); }
  Lease(Lease&& o) noexcept { *this = std::move(o); }
  Lease& operator=(Lease&& o) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  bool active() const { return held_ != nullptr; }
  void reset();

 private:
  friend class Balancer;
  const Balancer* balancer_ = nullptr;
  Shard* shard_ = nullptr;
  Held* held_ = nullptr;
  uint32_t index_ = 0;  // address index in the held table
  int32_t slot_ = -1;   // worker slot that owns shard_
  uint64_t started_ms_ = 0;
};

enum class PickStatus : uint8_t {
  kOk,
  kNoAddresses,  // no target resolved (Kong: 503 "name resolution failed")
  kNoHealthy,    // all unhealthy / below threshold (Kong: 503 kMsgNoPeer)
};

enum class Outcome : uint8_t { kResponse, kConnectFailure, kTimeout };

struct AddressReport {
  std::string ip;
  uint16_t port = 0;
  bool healthy = true;
};
struct TargetReport {
  std::string target;  // "host:port"
  uint32_t weight = 0;
  std::string health;  // HEALTHY, UNHEALTHY, DNS_ERROR, HEALTHCHECKS_OFF (Kong's /health)
  std::vector<AddressReport> addresses;
};
struct UpstreamReport {
  std::string id;
  std::string name;
  std::vector<TargetReport> targets;
};

class Runtime;

class Balancer : public std::enable_shared_from_this<Balancer> {
 public:
  // Config thread. Watches the targets' names on `runtime`'s resolver (waiting up to
  // `dns_wait` for names never resolved before), takes the health state from its checker, and
  // builds the first address table.
  static std::shared_ptr<const Balancer> create(BalancerConfig config, Runtime& runtime,
                                                std::chrono::milliseconds dns_wait);
  // Config thread. The balancer of a service whose host names no upstream. An IP-literal host
  // gets a fixed endpoint: no config, DNS watch, table or per-worker state, ~200 bytes instead
  // of several KB (10k plain services would otherwise cost ~60 MB); pick() fills the one
  // address and starts no lease. A name gets create(BalancerConfig::forHost(...)) without
  // waiting (the caller waits for all names at once); its Record is shared with every other
  // holder of the name.
  static std::shared_ptr<const Balancer> forService(const std::string& host, uint16_t port,
                                                    bool https, Runtime& runtime);
  ~Balancer();

  // A fixed endpoint (forService with an IP literal) returns a shared default config
  // (round-robin, no targets, checks off).
  const BalancerConfig& config() const { return *config_; }

  // Worker thread. Picks an address for attempt number `attempt` (0 = first); `previous` is the
  // lease of the failed attempt before it, whose address is avoided when another one is
  // available. Fills *out and starts *lease on kOk.
  PickStatus pick(const RequestInputs& in, uint32_t attempt, const Lease* previous,
                  Endpoint* out, Lease* lease) const;

  // Worker thread, once per attempt: what happened (status: the upstream's response code for
  // kResponse). Feeds passive health checks and the latency EWMA.
  void report(const Lease& lease, Outcome outcome, int status) const;

  // Any thread: whether pick() could find an address now (some address resolved, healthy
  // enough to pass the health threshold). A fixed endpoint always can. Canary's
  // upstream_fallback asks before it moves a request here.
  bool available() const;

  // Any thread: Kong's /upstreams/{u}/health view of this balancer.
  UpstreamReport healthReport() const;

  // Tests: the address table's version (bumped on each DNS change) and size.
  uint64_t tableVersion() const;
  size_t addressCount() const;

 private:
  friend class Lease;
  struct Cell;
  struct Fixed;
  Balancer() = default;
  Shard* shard(int32_t slot) const;
  void release(Lease& lease) const;

  std::shared_ptr<const BalancerConfig> config_;
  std::shared_ptr<Cell> cell_;    // the published table; a DNS listener (null when fixed_)
  std::unique_ptr<const Fixed> fixed_;  // set for a fixed endpoint: the only address
  static constexpr size_t kMaxSlots = 256;
  // Per-worker shards, indexed by workerSlot(): the array is allocated on the first pick (most
  // balancers of a large config are never picked from), then each shard by its own worker.
  mutable std::atomic<std::atomic<Shard*>*> shards_{nullptr};
};

using BalancerConstSharedPtr = std::shared_ptr<const Balancer>;

// Index of the calling thread among threads that pick (recycled when a thread exits), or -1
// when more than 256 threads pick at once (they get stateless round-robin).
int32_t workerSlot();

// Hashes used by consistent hashing (exposed for tests): crc32 of the key, as Kong.
uint32_t hashKey(std::string_view key);

}  // namespace portico::dp::balancer
