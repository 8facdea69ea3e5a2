// SyncServer: the control plane's side of ConfigSync. Serves DP streams on the cluster
// listener, encodes each new generation of a group once and fans it out to that group's DPs.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "portico/sync/v1/sync.pb.h"
#include "absl/status/statusor.h"
#include "common/metrics/metrics.h"
#include "common/sync/cluster_tls.h"
#include "control_plane/store/store.h"
#include "control_plane/sync/compat.h"
#include "control_plane/sync/node_registry.h"

namespace portico::cp {

struct SemVer {
  uint32_t major = 0, minor = 0, patch = 0;
};
std::optional<SemVer> parseSemVer(const std::string& version);
// Kong's rule: a DP is served if its major equals the CP's and its minor is not newer.
// Returns why not, or nullopt when compatible.
std::optional<std::string> versionIncompatibility(const std::string& cp_version,
                                                  const std::string& dp_version);

// Where ConfigSync.Report's batches go (control_plane/vitals/VitalsIngest). Thread-safe.
class VitalsSink {
 public:
  virtual ~VitalsSink() = default;
  // Sent to each DP when its Report stream opens.
  virtual sync::v1::VitalsSettings settings() const = 0;
  // The answer to one batch; may run on any thread, after the stream is gone.
  using Done = std::function<void(const sync::v1::VitalsAck&)>;
  // A batch from an authenticated DP of `group`. Never blocks: it is checked, queued and
  // answered through `done` exactly once.
  virtual void submit(std::string group, std::string node_id, std::string instance,
                      std::shared_ptr<const sync::v1::VitalsBatch> batch, Done done) = 0;
  // A batch refused before it reached submit() (bad sequence on its stream): counted.
  virtual void countRefused(const std::string& reason) = 0;
};

// The credentials the control plane issued (control_plane/provisioning/): the sync server
// asks it, without blocking, about every DP that connects, and sweeps connected DPs against
// it. Thread-safe; answers from memory.
class CredentialAuthority {
 public:
  virtual ~CredentialAuthority() = default;
  struct Verdict {
    bool known = false;     // issued here (else the static flags decide)
    std::string refusal;    // "" = may connect; else one line: revoked, expired, ...
    std::string group;      // the group it admits
    std::string id;         // the credential's id, for the sweep and one-node tokens
  };
  // A client certificate, by the lower-case hex SHA-256 of its DER.
  virtual Verdict certificate(const std::string& sha256) const = 0;
  // A join token as sent.
  virtual Verdict token(const std::string& token) const = 0;
  // At Hello: a token admits one node. "" if `node_id` may use token `id`, else why not
  // (another node joined with it first).
  virtual std::string claimToken(const std::string& id, const std::string& node_id) = 0;
  // Why credential `id` may no longer be used (revoked, expired), or "".
  virtual std::string invalidated(const std::string& id) const = 0;
};

struct SyncServerOptions {
  std::string listen_address = "0.0.0.0:8005";  // host:port; port 0 picks a free one
  uint32_t workers = 1;  // io threads serving the DP streams (--cluster_workers)
  bool insecure = false;                         // plain text (--cluster_insecure)
  std::string cert_path, key_path, ca_path;      // mTLS material (--cluster_cert/_key/_ca)
  // kShared: DPs must present exactly cert_path's certificate (ca_path unused). kPki: DP
  // certificates are verified against ca_path; a `portico://group/<name>` SAN URI limits the
  // groups a DP may join (without one: the default group only).
  sync::ClusterMtls mtls = sync::ClusterMtls::kPki;
  // PKI mode: join tokens (token -> group). A DP sending a known token may join that group
  // in addition to those its certificate names; an unknown token is refused.
  std::map<std::string, std::string> join_tokens;
  std::string cp_version;                        // "" = this build's version
  uint32_t heartbeat_interval_ms = 5000;
  // A stream that sent nothing for this many heartbeat intervals is dropped (node offline).
  uint32_t missed_heartbeats_offline = 3;
  // Deltas: generations kept in the retained window, and the most changes (change_log rows,
  // an upper bound of the entities changed) a delta may carry before a full snapshot is
  // cheaper. delta_window 0 disables deltas.
  uint32_t delta_window = 128;
  uint64_t max_delta_entities = 5000;
  // A group's store reads start at least this far apart: a burst of writes is read (and
  // offered to DPs) as a few generations, not one per group commit. 0 (the default) reads
  // each as soon as it is notified. Off by default because it also keeps an intermediate
  // state of a burst live on the DPs for up to this long (a route written before its auth
  // plugin: vitals_e2e_test's probes saw it answer 200 at 50 ms).
  uint32_t min_load_interval_ms = 0;
  // Retry schedule for store reads that fail (exponential, full jitter).
  uint32_t store_retry_initial_ms = 200;
  uint32_t store_retry_max_ms = 5000;
  // Load shedding: at most this many streams may be in their initial sync (Hello answered,
  // first push not yet ACKed/NACKed) at once; more are refused with RESOURCE_EXHAUSTED and
  // trailing metadata `retry-after-ms` (retry_after_ms plus up to 100 % jitter). 0 = no limit.
  // A DP that is already current at Hello needs no slot.
  uint32_t max_concurrent_syncs = 0;
  // Unauthenticated (no call yet) connections, in all and per client IP (wire::ServerOptions).
  uint32_t max_pending_connections = 1024;
  uint32_t max_pending_per_client = 128;
  uint32_t handshake_timeout_ms = 10000;  // TLS + first call
  uint32_t retry_after_ms = 1000;
  // Field-stripping rules for older DP minors (compat.h).
  std::vector<CompatRule> compat_rules = builtinCompatRules();
  // Serves ConfigSync.Report when set (not owned; outlives the server); UNIMPLEMENTED if not.
  VitalsSink* vitals = nullptr;
  // Issued certificates and tokens (not owned; outlives the server). Null: only the static
  // --cluster_join_tokens and the CA decide.
  CredentialAuthority* credentials = nullptr;
  // The mTLS material itself instead of cert_path/key_path/ca_path (a CA the control plane
  // created and keeps in PostgreSQL); each used when not empty.
  std::string cert_pem, key_pem, ca_pem;
};

// Counters since start; for tests, metrics and the status API.
struct SyncServerStats {
  uint64_t streams_active = 0;
  uint64_t streams_total = 0;
  uint64_t snapshot_loads = 0;    // successful store reads
  uint64_t load_failures = 0;     // failed store reads (retried)
  uint64_t encodes = 0;           // generations encoded (once each, whatever the DP count)
  uint64_t pushes = 0;            // snapshots started on a stream
  uint64_t chunks_sent = 0;
  uint64_t acks = 0;
  uint64_t nacks = 0;
  uint64_t delta_loads = 0;       // change-log reads (one per generation, plus older bases)
  uint64_t delta_encodes = 0;     // deltas encoded (once each, whatever the DP count)
  uint64_t delta_pushes = 0;
  uint64_t full_pushes = 0;
  uint64_t bytes_sent = 0;        // chunk message bytes written, all streams
  uint64_t liveness_drops = 0;    // streams ended after missed heartbeats
  uint64_t refused = 0;           // streams refused (version, certificate, group)
  uint64_t shed = 0;              // streams refused with RESOURCE_EXHAUSTED (load shedding)
  uint64_t syncing = 0;           // streams in their initial sync now (load-shedding slots)
  uint64_t compat_encodes = 0;    // payloads encoded for an older compatibility class
  // The cluster listener's transport (wire/grpc_server.h).
  uint64_t connections_active = 0;
  uint64_t connections_total = 0;
  uint64_t tls_handshake_failures = 0;  // refused certificates included (each logged)
  uint64_t protocol_errors = 0;         // connections closed for an HTTP/2 error
};

class SyncServer {
 public:
  virtual ~SyncServer() = default;

  // Starts serving; registers itself as the store's change callback. `store` must outlive
  // the server. Fails (kUnavailable / kInvalidArgument) if the listener cannot be bound or
  // the TLS material cannot be read.
  static absl::StatusOr<std::unique_ptr<SyncServer>> start(ConfigStore& store,
                                                           const SyncServerOptions& options);

  // The bound port (useful with port 0).
  virtual int port() const = 0;
  // Ends every stream and stops the listener; idempotent. Called from main on SIGTERM.
  virtual void shutdown() = 0;

  // Every DP seen since start (connected or not), and the counters. Thread-safe.
  virtual std::vector<NodeStatus> nodes() const = 0;
  virtual SyncServerStats stats() const = 0;
  // The families stats() cannot carry (histograms, labelled counts, per-group and per-node
  // generations): sync_metrics.cc writes them after the counters. Thread-safe.
  virtual void writeMetrics(metrics::Writer& w) const {}
  // The live registry (for the fleet registry's batched writer). Lives as long as the server.
  virtual NodeRegistry& registry() = 0;

  // proxy-cache purges and lookups (the Admin API's /proxy-cache endpoints): sent to every
  // connected DP of `group` that announced capability "cache-purge"; waits until each
  // answered or `wait` passed. `cache_key` "" purges every entry. Thread-safe; blocks.
  struct CachePurgeOutcome {
    uint32_t data_planes = 0;  // DPs it was sent to
    uint32_t answered = 0;
    uint32_t purged = 0;       // entries dropped (lookup: DPs holding it)
    std::string entry_json;    // lookup: one DP's entry ("" = none)
  };
  virtual CachePurgeOutcome purgeCache(const std::string& group, const std::string& cache_key,
                                       bool lookup, absl::Duration wait) = 0;
};

}  // namespace portico::cp
