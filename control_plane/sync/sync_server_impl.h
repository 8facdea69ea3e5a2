// SyncServerImpl: ConfigSync served by our own gRPC transport (wire/grpc_server.h), so
// thousands of DP streams cost no threads and a few KB each. One config thread reads snapshots from the store (never on gRPC threads), encodes
// each generation once and offers the shared EncodedSnapshot to every stream of its group.
//
// Locking: SyncServerImpl::mu_ guards groups, the load queue and the stream set; each
// SyncStream has its own mu_. Order is always server mu_, then stream mu_. A stream is
// deleted in OnDone only after it detached under server mu_, so code holding server mu_ may
// use any attached stream.
#pragma once

#include <atomic>
#include <cstdint>
#include <chrono>
#include <deque>
#include <string_view>
#include <map>
#include <optional>
#include <tuple>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/metrics/histogram.h"
#include "absl/time/time.h"
#include "common/sync/codec.h"
#include "control_plane/sync/node_registry.h"
#include "portico/config/v1/config.pb.h"
#include "control_plane/sync/push_state.h"
#include "control_plane/sync/sync_server.h"
#include "control_plane/sync/wire/grpc_server.h"
#include "portico/sync/v1/sync.pb.h"

namespace portico::cp {

class SyncServerImpl;

// Why a Hello field may not be shown or used as a label ("" when it may): longer than `max`
// bytes, or a control character. `field` names it in the message ("hello.<field> ...").
std::string helloFieldProblem(const char* field, const std::string& value, size_t max);

// The group a DP may join (*group; a Hello's "" means the one group its certificate names,
// else default), or why not: in PKI mode its certificate's and join token's groups decide.
std::optional<std::string> groupRefusal(const SyncServerOptions& options,
                                        const std::vector<std::string>& cert_groups,
                                        const std::string& requested, std::string* group);

// One DP's stream. Callbacks run on the transport's io thread; offer() and finish() may also
// be called by the server (holding its mu_).
class SyncStream final : public wire::CallHandler {
 public:
  SyncStream(SyncServerImpl* server, uint64_t session, wire::ServerCall* call, std::string peer,
             std::vector<std::string> cert_groups, std::vector<std::string> credentials);

  // A payload a stream waits for (see pump()).
  struct Prep {
    TargetConstSharedPtr target;
    bool full = false;
    uint64_t base_generation = 0;
    std::string compat_class;
  };

  // Starts reading, or refuses the stream at once with `refusal` (shutdown, certificate).
  void begin(std::optional<wire::GrpcStatus> refusal);
  // A new generation of this stream's group, or a payload of the current one became ready.
  // Caller holds the server's mu_.
  void offer(TargetConstSharedPtr target);
  void repump();
  // The last time the DP sent anything (for the liveness sweep). Thread-safe.
  absl::Time lastSeen() const;
  // Ends the stream with `status` once any write in progress completes. Idempotent.
  void finish(wire::GrpcStatus status);

  uint64_t session() const { return session_; }
  // A load-shedding slot (see SyncServerOptions::max_concurrent_syncs). Thread-safe.
  std::atomic<bool>& holdsSlot() { return holds_slot_; }
  // Set once at Hello, before attach; read by the server under its mu_.
  const std::string& group() const { return group_; }
  const std::vector<std::string>& credentials() const { return credentials_; }
  const std::string& nodeId() const { return node_id_; }
  // Hello announced "cache-purge" (set before attach).
  bool purgeCapable() const { return purge_capable_; }
  // Queues a control message (a CachePurge) ahead of any chunk. Caller holds the server's mu_.
  void sendControl(wire::SharedBytes message);

  // Interface: wire::CallHandler
  void onMessage(std::string_view message) override;
  void onReadsDone() override;
  void onWriteDone(bool ok) override;
  void onDone() override;

 private:
  void handle(const sync::v1::DataPlaneMessage& message);
  void onHello(const sync::v1::Hello& hello);
  void onAck(const sync::v1::Ack& ack);
  void onNack(const sync::v1::Nack& nack);
  // Starts the next write if none is in progress: control messages first, then the chunks
  // of the in-flight push, then (once the DP answered) the next queued push. Returns a
  // payload the server must prepare first (the caller passes it on, with or without the
  // server's mu_ as it holds it).
  std::optional<Prep> pump();
  void pumpAndRequest();  // pump() from a reaction, which holds no server lock

  // Releases the load-shedding slot once the first push is answered. Under mu_.
  void maybeReleaseSlotLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  SyncServerImpl* const server_;
  const uint64_t session_;
  wire::ServerCall* const call_;
  const std::string peer_;  // gRPC peer URI of the DP
  // PKI mode: the groups the DP's certificate names (portico://group/<name>).
  const std::vector<std::string> cert_groups_;
  // Issued credentials (certificate, join token) it connected with: ids for the sweep.
  const std::vector<std::string> credentials_;
  std::atomic<bool> holds_slot_{false};
  std::string compat_class_;       // set at Hello
  // The plugins the DP implements (Hello with capability "plugin-set"); unset for DPs that
  // do not say, which refuse what they cannot run themselves (NACK).
  std::optional<std::set<std::string>> dp_plugins_;
  std::atomic<bool> plugin_set_incompatible_{false};
  bool hello_seen_ = false;        // reaction-thread only (reads are serialized)
  bool purge_capable_ = false;     // set at Hello, before attach
  std::string group_;
  std::string node_id_;

  mutable absl::Mutex mu_;
  PushState push_ ABSL_GUARDED_BY(mu_);
  absl::Time last_seen_ ABSL_GUARDED_BY(mu_) = absl::Now();
  // Serialized messages written before any chunk (HelloReply).
  std::vector<wire::SharedBytes> control_ ABSL_GUARDED_BY(mu_);
  sync::EncodedSnapshotConstSharedPtr sending_ ABSL_GUARDED_BY(mu_);
  size_t next_chunk_ ABSL_GUARDED_BY(mu_) = 0;
  bool write_in_progress_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_control_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool offered_ ABSL_GUARDED_BY(mu_) = false;  // the group's target was offered at least once
  wire::GrpcStatus final_status_ ABSL_GUARDED_BY(mu_);
};

class SyncServerImpl final : public SyncServer {
 public:
  SyncServerImpl(ConfigStore& store, SyncServerOptions options);
  ~SyncServerImpl() override;

  // Builds credentials and the listener, starts the config thread. Called once by start().
  absl::Status init();

  // Interface: SyncServer
  int port() const override { return port_; }
  void shutdown() override;
  std::vector<NodeStatus> nodes() const override { return registry_.list(); }
  SyncServerStats stats() const override;

  NodeRegistry& registry() override { return registry_; }
  CachePurgeOutcome purgeCache(const std::string& group, const std::string& cache_key,
                               bool lookup, absl::Duration wait) override
      ABSL_LOCKS_EXCLUDED(mu_, purge_mu_);
  // A DP's CachePurgeResult.
  void onPurgeResult(const sync::v1::CachePurgeResult& result) ABSL_LOCKS_EXCLUDED(purge_mu_);
  // For SyncStream (any thread).
  uint32_t heartbeatIntervalMs() const { return options_.heartbeat_interval_ms; }
  const SyncServerOptions& options() const { return options_; }
  wire::CallHandler* newStream(wire::ServerCall* call, const wire::CallInfo& info);
  // ConfigSync.Report (options().vitals set): the same peer checks as Sync.
  wire::CallHandler* newReportStream(wire::ServerCall* call, const wire::CallInfo& info);
  // Load shedding at Hello: true if the stream may sync now (it is current, or got a slot).
  bool admit(SyncStream* stream, const std::string& group, uint64_t generation,
             const std::string& hash) ABSL_LOCKS_EXCLUDED(mu_);
  void releaseSlot(SyncStream* stream);
  // A retry hint for a refused stream: retry_after_ms plus up to 100 % jitter.
  uint64_t retryAfterMs();
  // A stream needs a payload that is not encoded yet; the config thread prepares it and
  // re-pumps the group's streams.
  void requestPayload(const SyncStream::Prep& prep) ABSL_LOCKS_EXCLUDED(mu_);
  void requestPayloadLocked(const SyncStream::Prep& prep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After Hello: joins the stream's group and offers it the group's current snapshot (or
  // asks the config thread to load one).
  void attach(SyncStream* stream) ABSL_LOCKS_EXCLUDED(mu_);
  // From OnDone: forgets the stream. After this returns the stream may be deleted.
  void detach(SyncStream* stream) ABSL_LOCKS_EXCLUDED(mu_);
  // A DP said at Hello it runs `generation` of `epoch`. If that is the group's epoch but a
  // generation this CP has not seen, the config thread asks the database, which starts a new
  // epoch when its history is behind (restored from a backup): every DP then converges.
  void checkAhead(const std::string& group, const std::string& epoch, uint64_t generation)
      ABSL_LOCKS_EXCLUDED(mu_);

  struct Counters {
    std::atomic<uint64_t> streams_total{0}, snapshot_loads{0}, load_failures{0}, encodes{0},
        pushes{0}, chunks_sent{0}, acks{0}, nacks{0}, delta_loads{0}, delta_encodes{0},
        delta_pushes{0}, full_pushes{0}, bytes_sent{0}, liveness_drops{0}, refused{0},
        shed{0}, compat_encodes{0};
  };
  Counters& counters() { return counters_; }
  // A DP of `group` acked `generation`: observes the time since this CP learned of its commit
  // (portico_cp_config_propagation_seconds).
  void observeAck(const std::string& group, uint64_t generation);
  // A NACK, by its status code and first error's entity type.
  void countNack(int code, const std::string& entity_type);
  void writeMetrics(metrics::Writer& w) const override;

 private:
  // Holds the store's change callback target; cleared on shutdown so a late notification is
  // dropped instead of touching a destroyed server.
  struct ChangeSink {
    absl::Mutex mu;
    SyncServerImpl* target ABSL_GUARDED_BY(mu) = nullptr;
  };
  struct GroupState {
    TargetSharedPtr current;
    // Generations whose (generation, hash) this CP produced: a DP running one of them can
    // get a delta. Newest last, at most options_.delta_window entries.
    std::deque<std::pair<uint64_t, std::string>> window;
    std::set<SyncStream*> streams;
    absl::Time last_load = absl::InfinitePast();  // when configLoop last started reading it
    // The newest generation committed while no DP of this group was connected here, not
    // read yet (0: none). attach() asks for it.
    uint64_t deferred = 0;
  };
  struct PrepKey {
    std::string group;
    uint64_t generation;
    uint64_t base;  // 0 = the full snapshot
    std::string compat_class;  // "" = native; else the full snapshot for that class
    bool operator<(const PrepKey& o) const {
      return std::tie(group, generation, base, compat_class) <
             std::tie(o.group, o.generation, o.base, o.compat_class);
    }
  };
  // Why a TLS peer may not open a stream (nullopt: it may), and its certificate's groups.
  std::optional<wire::GrpcStatus> checkPeer(const wire::CallInfo& info,
                                            std::vector<std::string>* groups,
                                            std::vector<std::string>* credentials);
  struct LoadRequest {
    uint64_t wanted_generation = 0;
    uint32_t attempts = 0;
    absl::Time not_before = absl::InfinitePast();
  };

  void onStoreChange(const std::string& group, uint64_t generation) ABSL_LOCKS_EXCLUDED(mu_);
  void requestLoadLocked(const std::string& group, uint64_t generation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void publishLocked(const std::string& group, TargetSharedPtr target)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void repumpGroupLocked(const std::string& group) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void configLoop();
  // Config-thread steps; each returns false when the store failed and the load must retry.
  absl::Status loadGroup(const std::string& group);
  absl::Status loadFull(const std::string& group);
  void prepare(const PrepKey& key);
  void resolveAhead(const std::string& group, const std::string& epoch, uint64_t generation);
  void sweepLiveness();
  absl::Duration retryDelay(uint32_t attempts);

  ConfigStore& store_;
  const SyncServerOptions options_;
  // Metrics state: when this CP learned of each recent generation's commit (at most
  // kCommitTimes per group), and NACKs by (code, entity type).
  static constexpr size_t kCommitTimes = 256;
  mutable absl::Mutex metrics_mu_;
  std::map<std::string, std::deque<std::pair<uint64_t, std::chrono::steady_clock::time_point>>>
      commit_times_ ABSL_GUARDED_BY(metrics_mu_);
  // (code name, entity type): both from bounded sets (sync_server_impl.cc, nack*Label).
  std::map<std::pair<std::string, std::string>, uint64_t> nack_reasons_
      ABSL_GUARDED_BY(metrics_mu_);
  metrics::Histogram propagation_{metrics::Histogram::secondsBounds()};
  NodeRegistry registry_;
  Counters counters_;
  std::shared_ptr<ChangeSink> sink_;
  std::unique_ptr<wire::GrpcServer> server_;
  int port_ = 0;
  std::thread config_thread_;
  std::mt19937_64 rng_;  // config thread only
  std::string pinned_sha256_;  // shared mode: our own certificate's digest
  std::atomic<uint32_t> syncing_{0};
  std::atomic<uint64_t> hint_seed_{0x9e3779b97f4a7c15ULL};

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_session_ ABSL_GUARDED_BY(mu_) = 1;
  std::set<SyncStream*> streams_ ABSL_GUARDED_BY(mu_);  // every live stream, Hello or not
  std::map<std::string, GroupState> groups_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, LoadRequest> loads_ ABSL_GUARDED_BY(mu_);
  std::set<PrepKey> preps_ ABSL_GUARDED_BY(mu_);
  // (group, epoch) -> the highest generation a DP reported ahead of us (checkAhead).
  std::map<std::pair<std::string, std::string>, uint64_t> ahead_ ABSL_GUARDED_BY(mu_);
  // Each group's current config, canonical; deltas are applied to it in place. Config
  // thread only.
  std::map<std::string, std::unique_ptr<config::v1::Snapshot>> snapshots_;
  // proxy-cache purges waiting for their DPs' answers, by id.
  absl::Mutex purge_mu_ ABSL_ACQUIRED_AFTER(mu_);
  uint64_t next_purge_id_ ABSL_GUARDED_BY(purge_mu_) = 1;
  std::map<uint64_t, CachePurgeOutcome> purges_ ABSL_GUARDED_BY(purge_mu_);
  absl::Time next_sweep_ = absl::InfinitePast();  // config thread only
};

}  // namespace portico::cp
