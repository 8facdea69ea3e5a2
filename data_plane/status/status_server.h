// The data plane's status listener (--status_listen, default 127.0.0.1:8100), on its own
// thread so a slow scrape never touches a proxy worker:
//   GET /status        JSON: applied generation, config hash, connection and request totals
//   GET /status/ready  200 {"status":"ready"} once a config is applied, else 503
//   GET /metrics       Prometheus text; per-worker counter shards are summed on scrape: the
//                      portico_dp_* families and Kong's kong_* families (the prometheus
//                      plugin's exporter, data_plane/plugins/prometheus/exposition.h)
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/flags.h"
#include "common/metrics/metrics.h"
#include "data_plane/proxy/proxy_stats.h"
#include "data_plane/snapshot.h"

namespace portico::dp {

struct StatusOptions {
  std::string listen_address = "127.0.0.1";
  uint16_t listen_port = 8100;  // 0 picks a free port
  // A request head must arrive whole within this of the connection's start or last response
  // (a trickling client does not extend it); an idle keep-alive connection closes after it.
  uint32_t header_timeout_ms = 10000;
  // Connections beyond this are closed at once (scrapers and probes need few).
  uint32_t max_connections = 1024;
};

// A hybrid DP's link to its control plane, as /status shows it.
struct ControlPlaneLink {
  bool connected = false;
  std::string address;            // --cp_address
  std::string group;              // the control plane (group) joined
  int64_t last_contact_unix_ms = 0;  // the last message from the CP; 0: none yet
};

// Who this node is, for Kong's node-level families (kong_node_info, ...).
struct StatusNode {
  std::string node_id;  // "": a random id made once per process
  std::string version = kPorticoVersion;
  // A hybrid DP: whether its control-plane stream is up (kong_control_plane_connected).
  // Called on the status thread. Empty: not a hybrid DP (declarative config).
  std::function<bool()> cp_connected;
  // The same DP's link for GET /status ("control_plane"); empty: not shown.
  std::function<ControlPlaneLink()> cp_link;
  int64_t cluster_cert_expiry_s = 0;  // notAfter of --cluster_cert (unix seconds); 0: none
  // More families for /metrics (the vitals reporter's), written on the status thread.
  std::function<void(metrics::Writer&)> extra_metrics;
};

class StatusServer {
 public:
  // `store` and `stats` must outlive the server. `stats` may be null (no proxy yet).
  static absl::StatusOr<std::unique_ptr<StatusServer>> start(const StatusOptions& options,
                                                             const SnapshotStore& store,
                                                             const ProxyStats* stats);
  ~StatusServer();
  uint16_t port() const { return port_; }
  void stop();
  // Any thread; takes effect on the next scrape.
  void setNode(StatusNode node);

  // The response bodies, exposed for tests.
  static std::string statusJson(const SnapshotStore& store, const ProxyStats* stats,
                                const StatusNode* node = nullptr);
  static std::string metricsText(const SnapshotStore& store, const ProxyStats* stats,
                                 const StatusNode* node = nullptr);

 private:
  struct Impl;
  StatusServer() = default;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
};

}  // namespace portico::dp
