// FleetRegistry: the persistent side of the node registry (Konnect's Runtime Manager, Kong's
// clustering_data_planes). A writer thread takes the nodes whose status changed from the
// in-memory NodeRegistry and upserts them into PostgreSQL in batches: one statement per
// flush interval (1 s) per 1,000 nodes, whatever the heartbeat rate. It also purges nodes
// not seen for purge_delay. The query side serves the /clustering endpoints from PostgreSQL,
// so any CP replica lists the DPs of every replica.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "control_plane/fleet/fleet_endpoints.h"
#include "control_plane/store/pg_pool.h"
#include "control_plane/sync/node_registry.h"

namespace portico::cp::fleet {

struct FleetOptions {
  std::string dsn;
  absl::Duration flush_interval = absl::Seconds(1);
  uint32_t max_rows_per_statement = 1000;
  absl::Duration purge_delay = absl::Hours(24 * 14);  // Kong's cluster_data_plane_purge_delay
  absl::Duration purge_check_interval = absl::Minutes(1);
  // A node whose last_seen is older than this is listed as offline even if its CP replica
  // died without saying so (3 missed heartbeats).
  absl::Duration offline_after = absl::Seconds(15);
};

// One row of clustering_data_planes.
struct FleetNode {
  std::string id, group, hostname, ip, version, sync_status, config_hash;
  uint64_t generation = 0;
  bool connected = false;
  std::string labels_json = "{}";
  std::string issues_json = "[]";
  int64_t last_seen = 0, created_at = 0, updated_at = 0;  // epoch seconds
};

class FleetRegistry final : public FleetEndpoints {
 public:
  // `registry` must outlive this object. Starts no thread until start().
  FleetRegistry(NodeRegistry& registry, FleetOptions options);
  ~FleetRegistry() override;

  void start();
  // Final flush, then joins the writer; idempotent.
  void stop();

  // One flush now (the writer thread's step); returns the statements executed.
  absl::StatusOr<int> flush();
  // Deletes nodes not seen for purge_delay; returns how many.
  absl::StatusOr<int64_t> purge();
  // Nodes of `group` ("" = all), ordered by id.
  absl::StatusOr<std::vector<FleetNode>> list(const std::string& group);

  struct Stats {
    uint64_t statements = 0, rows = 0, failures = 0, purged = 0;
  };
  Stats stats() const;

  // Interface FleetEndpoints
  std::optional<FleetResponse> handle(const std::string& method,
                                      const std::vector<std::string>& segments,
                                      const std::map<std::string, std::string>& query) override;

 private:
  void loop();
  // GET [/control-planes/{group_ref}]/upstreams/{upstream_ref}/health ("" = default group).
  std::optional<FleetResponse> upstreamHealth(const std::string& group_ref,
                                              const std::string& upstream_ref);

  NodeRegistry& registry_;
  const FleetOptions options_;
  PgPool pool_;
  // Rows that failed to write, retried (merged with newer state) on the next flush.
  std::map<std::string, NodeStatus> pending_;  // writer thread (and flush callers) only
  absl::Mutex flush_mu_;
  std::atomic<uint64_t> statements_{0}, rows_{0}, failures_{0}, purged_{0};
  absl::Notification stop_;
  std::atomic<bool> stopped_{false};
  std::thread thread_;
};

}  // namespace portico::cp::fleet
