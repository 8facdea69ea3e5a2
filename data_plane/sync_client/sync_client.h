// SyncClient: the data plane's side of ConfigSync. On its own thread it keeps one stream to
// the control plane, says Hello with the config it runs, reassembles pushed snapshots, hands
// each to the ApplyFn (validate, build, swap: provided by main), persists what applied, and
// answers every push with an Ack or a structured Nack. Reconnects with exponential backoff
// and full jitter; serves the cached snapshot when started while the CP is unreachable.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/config/key_auth_table.h"
#include "common/config/validate.h"
#include "common/sync/cluster_tls.h"
#include "common/sync/codec.h"
#include "portico/config/v1/config.pb.h"
#include "portico/sync/v1/sync.pb.h"

namespace portico::dp {
namespace vitals {
class Collector;
}

class SyncClient {
 public:
  struct Options {
    std::string cp_address;              // host:port (--cp_address)
    bool insecure = false;               // plain text instead of mTLS
    std::string cert_path, key_path, ca_path;  // this DP's cert and key; CA of the CP's cert
    // kShared: the CP must present exactly cert_path's certificate (ca_path unused; the name
    // checked is the certificate's own). kPki: the CP's certificate is verified against
    // ca_path for server_name (or the address' host).
    sync::ClusterMtls mtls = sync::ClusterMtls::kPki;
    std::string server_name;             // expected CP cert name if not the address' host
    std::string join_token;              // pki: lets the CP admit this DP to a group
    std::string node_id;                 // if empty: kept in <cache_path>.node_id, else a UUID v4
    std::string hostname;                // gethostname() if empty
    std::string group;                   // "" = default
    std::string version;                 // of this binary
    // The plugins this binary implements (Hello.plugins, capability "plugin-set").
    std::vector<std::string> plugins;
    std::map<std::string, std::string> labels;
    std::string cache_path;              // "" = no cache (--config_cache_path)
    uint64_t max_snapshot_bytes = sync::kDefaultMaxSnapshotBytes;
    uint32_t backoff_initial_ms = 100;
    uint32_t backoff_max_ms = 10000;
    bool deltas = true;                  // announce the "delta" capability
    // The balancers' health (Heartbeat.upstreams, e.g. upstreamHealth() of the served
    // snapshot), called on the heartbeat thread; empty function = not reported. A report goes
    // out with a heartbeat when it differs from the last one sent on this stream, and at
    // least every `health_refresh_heartbeats` heartbeats.
    std::function<std::vector<sync::v1::UpstreamHealth>()> health;
    // The proxy-cache purges and lookups the CP sends (capability "cache-purge" when set):
    // called on the stream's reader thread; the result goes back on the stream.
    std::function<sync::v1::CachePurgeResult(const sync::v1::CachePurge&)> cache_purge;
    uint32_t health_refresh_heartbeats = 12;
    // Traffic buckets to report on the Report stream (data_plane/vitals/); not owned. Null:
    // no vitals.
    vitals::Collector* vitals = nullptr;
  };

  // Called on the sync thread with a reassembled, hash-checked snapshot (whole: key-auth
  // credentials included, which costs a copy; portico-dp uses SharedApplyFn). Validates, builds and
  // publishes it; returns OK once the new config serves traffic, or an error (with per-entity
  // details in `errors`) after which the DP must still serve its previous config.
  using ApplyFn = std::function<absl::Status(const config::v1::Snapshot&,
                                             const std::string& hash,
                                             config::FieldErrors* errors)>;
  // The same, handed the shared, immutable snapshot the client keeps as its current one
  // (deltas apply to a copy of it): an embedder that retains it holds no second copy. The
  // snapshot comes split (common/sync/codec.h, decodePayloadSplit): `rest` holds no key-auth
  // credentials; `key_auth` (never null) holds them.
  using SharedApplyFn = std::function<absl::Status(
      std::shared_ptr<const config::v1::Snapshot> rest,
      std::shared_ptr<const config::KeyAuthTable> key_auth, const std::string& hash,
      config::FieldErrors* errors)>;

  // What the client is doing; for /status, metrics and tests.
  struct State {
    bool connected = false;              // a stream is up and the CP answered Hello
    int64_t last_contact_unix_ms = 0;    // the last message from the CP (0: none yet)
    uint64_t generation = 0;             // the config applied and served
    std::string config_hash;
    bool from_cache = false;             // that config came from cache_path
    uint32_t heartbeat_interval_ms = 0;
    uint64_t connects = 0;               // streams the CP answered
    uint64_t connect_failures = 0;
    uint64_t applies = 0;                // successful ApplyFn calls (cache included)
    uint64_t acks = 0;
    uint64_t nacks = 0;
    uint64_t heartbeats = 0;
    uint64_t health_reports = 0;         // heartbeats that carried a health report
    uint64_t retry_hints = 0;            // RESOURCE_EXHAUSTED answers with a retry-after-ms
    uint64_t last_retry_after_ms = 0;    // the last hint, which the next attempt waited for
    double last_apply_ms = 0;            // last push: last chunk received -> ACK sent
  };

  SyncClient(Options options, ApplyFn apply);
  SyncClient(Options options, SharedApplyFn apply);
  ~SyncClient();  // stop()s
  SyncClient(const SyncClient&) = delete;
  SyncClient& operator=(const SyncClient&) = delete;

  // Applies the cached snapshot, if cache_path holds a valid one, on the calling thread (so
  // the DP serves it as soon as start() returns), then starts the sync thread. Fails with
  // kInvalidArgument on unreadable TLS material or a missing address; a bad cache is only
  // logged. Call once.
  absl::Status start();
  // Cancels the stream and joins the thread; prompt (no waiting on the network). Idempotent.
  void stop();

  const std::string& nodeId() const;
  State state() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// A random (version 4) UUID in lower-case 8-4-4-4-12 form.
std::string generateUuid();

}  // namespace portico::dp
