// SyncServerImpl: ConfigSync on the gRPC callback API, so thousands of DP streams cost no
// threads. One config thread reads snapshots from the store (never on gRPC threads), encodes
// each generation once and offers the shared EncodedSnapshot to every stream of its group.
//
// Locking: SyncServerImpl::mu_ guards groups, the load queue and the stream set; each
// SyncStream has its own mu_. Order is always server mu_, then stream mu_. A stream is
// deleted in OnDone only after it detached under server mu_, so code holding server mu_ may
// use any attached stream.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/sync/codec.h"
#include "control_plane/sync/node_registry.h"
#include "control_plane/sync/push_state.h"
#include "control_plane/sync/sync_server.h"
#include "grpcpp/grpcpp.h"
#include "portico/sync/v1/sync.grpc.pb.h"

namespace portico::cp {

class SyncServerImpl;

// One DP's stream. Reactions run on gRPC's threads; offer() and finish() may also be called
// by the server (holding its mu_).
class SyncStream final
    : public grpc::ServerBidiReactor<sync::v1::DataPlaneMessage, sync::v1::ControlPlaneMessage> {
 public:
  SyncStream(SyncServerImpl* server, uint64_t session);

  // Starts reading, or refuses the stream at once if the server is shutting down.
  void begin(bool refuse);
  // A new generation of this stream's group. Caller holds the server's mu_.
  void offer(sync::EncodedSnapshotConstSharedPtr snapshot);
  // Ends the stream with `status` once any write in progress completes. Idempotent.
  void finish(grpc::Status status);

  uint64_t session() const { return session_; }
  // Set once at Hello, before attach; read by the server under its mu_.
  const std::string& group() const { return group_; }
  const std::string& nodeId() const { return node_id_; }

  // Interface: grpc::ServerBidiReactor
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

 private:
  void handle(const sync::v1::DataPlaneMessage& message);
  void onHello(const sync::v1::Hello& hello);
  void onAck(const sync::v1::Ack& ack);
  void onNack(const sync::v1::Nack& nack);
  // Starts the next write if none is in progress: control messages first, then the chunks
  // of the in-flight push, then (once the DP answered) the next queued push.
  void pump();

  SyncServerImpl* const server_;
  const uint64_t session_;
  sync::v1::DataPlaneMessage in_;  // the one outstanding read
  bool hello_seen_ = false;        // reaction-thread only (reads are serialized)
  std::string group_;
  std::string node_id_;

  absl::Mutex mu_;
  PushState push_ ABSL_GUARDED_BY(mu_);
  // Messages written before any chunk (HelloReply). A deque keeps each element's address
  // stable while gRPC writes it.
  std::deque<sync::v1::ControlPlaneMessage> control_ ABSL_GUARDED_BY(mu_);
  sync::EncodedSnapshotConstSharedPtr sending_ ABSL_GUARDED_BY(mu_);
  size_t next_chunk_ ABSL_GUARDED_BY(mu_) = 0;
  bool write_in_progress_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_control_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
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

  // For SyncStream (any thread).
  NodeRegistry& registry() { return registry_; }
  uint32_t heartbeatIntervalMs() const { return options_.heartbeat_interval_ms; }
  grpc::ServerBidiReactor<sync::v1::DataPlaneMessage, sync::v1::ControlPlaneMessage>*
  newStream();
  // After Hello: joins the stream's group and offers it the group's current snapshot (or
  // asks the config thread to load one).
  void attach(SyncStream* stream) ABSL_LOCKS_EXCLUDED(mu_);
  // From OnDone: forgets the stream. After this returns the stream may be deleted.
  void detach(SyncStream* stream) ABSL_LOCKS_EXCLUDED(mu_);

  struct Counters {
    std::atomic<uint64_t> streams_total{0}, snapshot_loads{0}, load_failures{0}, encodes{0},
        pushes{0}, chunks_sent{0}, acks{0}, nacks{0};
  };
  Counters& counters() { return counters_; }

 private:
  class Service;
  // Holds the store's change callback target; cleared on shutdown so a late notification is
  // dropped instead of touching a destroyed server.
  struct ChangeSink {
    absl::Mutex mu;
    SyncServerImpl* target ABSL_GUARDED_BY(mu) = nullptr;
  };
  struct GroupState {
    sync::EncodedSnapshotConstSharedPtr current;
    std::set<SyncStream*> streams;
  };
  struct LoadRequest {
    uint64_t wanted_generation = 0;
    uint32_t attempts = 0;
    absl::Time not_before = absl::InfinitePast();
  };

  void onStoreChange(const std::string& group, uint64_t generation) ABSL_LOCKS_EXCLUDED(mu_);
  void requestLoadLocked(const std::string& group, uint64_t generation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void publishLocked(const std::string& group, sync::EncodedSnapshotConstSharedPtr encoded)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void configLoop();
  absl::Duration retryDelay(uint32_t attempts);

  ConfigStore& store_;
  const SyncServerOptions options_;
  NodeRegistry registry_;
  Counters counters_;
  std::shared_ptr<ChangeSink> sink_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;  // declared after service_: destroyed first
  int port_ = 0;
  std::thread config_thread_;
  std::mt19937_64 rng_;  // config thread only

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_session_ ABSL_GUARDED_BY(mu_) = 1;
  std::set<SyncStream*> streams_ ABSL_GUARDED_BY(mu_);  // every live stream, Hello or not
  std::map<std::string, GroupState> groups_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, LoadRequest> loads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace portico::cp
