// NodeRegistry: what the control plane knows about each connected (or recently connected) data
// plane, fed by the sync streams: identity from Hello, applied config from Ack/Heartbeat, the
// last rejection from Nack. In memory only for now; the fleet registry (a later issue) batches
// it to PostgreSQL and serves it over the Admin API.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/config/validate.h"
#include "portico/sync/v1/sync.pb.h"

namespace portico::cp {

struct CompatibilityIssue {
  std::string id;           // stable rule id
  std::string severity;     // "warning" | "error"
  std::string description;
  // What the CP changed for this node (empty for a version refusal): the entity and field.
  std::string entity_type;
  std::string entity_id;
  std::string field;
};

struct NodeStatus {
  std::string node_id;
  std::string hostname;
  std::string version;
  std::string group;
  std::string ip;                       // peer address of its stream
  std::map<std::string, std::string> labels;
  // Kong's sync_status: "normal", "version_incompatible" (refused), "plugin_set_incompatible"
  // (lacks a plugin its group uses: not sent the config), or "unknown".
  std::string sync_status = "unknown";
  std::vector<CompatibilityIssue> compatibility_issues;
  bool connected = false;
  absl::Time connected_at;
  absl::Time last_seen;                 // last message of any kind
  uint64_t applied_generation = 0;      // from Hello, Ack and Heartbeat
  std::string applied_hash;
  // The last push this node rejected; the CP never sends it that (generation, hash) again.
  uint64_t rejected_generation = 0;
  std::string rejected_hash;
  std::string rejected_message;
  config::FieldErrors rejected_errors;
  uint64_t acks = 0;
  uint64_t nacks = 0;
};

// What one node last reported of its balancers (Heartbeat.upstreams); immutable once stored.
using UpstreamHealthReport = std::vector<sync::v1::UpstreamHealth>;
struct NodeHealth {
  std::string node_id;
  std::string hostname;
  bool connected = false;
  absl::Time reported_at;
  std::shared_ptr<const UpstreamHealthReport> upstreams;  // never null
};

// Thread-safe; called from gRPC reaction threads.
class NodeRegistry {
 public:
  // A stream said Hello. Returns the node's record as it was before (its last rejection is
  // what the stream must not resend). `session` identifies the stream, so a stale stream's
  // disconnect does not mark a reconnected node offline.
  std::optional<NodeStatus> onHello(uint64_t session, const std::string& node_id,
                                    const std::string& hostname, const std::string& version,
                                    const std::string& group, uint64_t generation,
                                    const std::string& hash, const std::string& ip = "",
                                    const std::map<std::string, std::string>& labels = {});
  // The node's Hello was refused (e.g. incompatible version); it is recorded, not connected.
  void onRefused(const std::string& node_id, const std::string& hostname,
                 const std::string& version, const std::string& group, const std::string& ip,
                 std::string sync_status, std::vector<CompatibilityIssue> issues);
  // The node's sync_status and its issues (e.g. "plugin_set_incompatible" with the plugins it
  // lacks, or back to "normal"): replaces both.
  void setSyncStatus(const std::string& node_id, std::string sync_status,
                     std::vector<CompatibilityIssue> issues);
  // What the CP strips from the payloads it sends this node (older minor): replaces the list.
  void setCompatibilityIssues(const std::string& node_id,
                              std::vector<CompatibilityIssue> issues);
  void onAck(const std::string& node_id, uint64_t generation, const std::string& hash);
  void onNack(const std::string& node_id, uint64_t generation, const std::string& hash,
              const std::string& message, config::FieldErrors errors);
  void onHeartbeat(const std::string& node_id, uint64_t generation, const std::string& hash);
  void onDisconnect(uint64_t session, const std::string& node_id);
  // The node's balancer health (a Heartbeat with health_report): replaces its last report.
  // Not persisted (no dirty mark): it is live state of the replica holding the stream.
  void onHealth(const std::string& node_id, UpstreamHealthReport upstreams);
  // The last health report of every node of `group` that sent one, ordered by node id.
  std::vector<NodeHealth> health(const std::string& group) const;

  std::optional<NodeStatus> get(const std::string& node_id) const;
  std::vector<NodeStatus> list() const;
  // The records changed since the last call (for the batched PostgreSQL writer).
  std::vector<NodeStatus> takeDirty();

 private:
  struct Entry {
    NodeStatus status;
    uint64_t session = 0;
    std::shared_ptr<const UpstreamHealthReport> health;  // null until the node reports
    absl::Time health_at;
  };
  void dirty(const std::string& node_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    dirty_.insert(node_id);
  }
  // The one path for a stream event about a known node: marks it seen now, lets `update`
  // change its status, and queues it for the next PostgreSQL flush. Unknown ids are ignored
  // (the node was purged while its stream was still closing).
  template <class F>
  void touch(const std::string& node_id, F&& update) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = nodes_.find(node_id);
    if (it == nodes_.end()) {
      return;
    }
    it->second.status.last_seen = absl::Now();
    update(it->second.status);
    dirty(node_id);
  }
  std::set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> nodes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace portico::cp
