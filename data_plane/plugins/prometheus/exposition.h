// Kong's prometheus exporter (kong/plugins/prometheus/exporter.lua) for the data plane's
// status listener: the families Kong's DPs serve on /metrics, with Kong's names, labels, help
// texts and buckets, built from the served snapshot, the proxy's counters and the plugin's
// series store (series.h) on each scrape.
//
// As in Kong, the node-level gauges are always there; the per-request families and
// kong_nginx_metric_errors_total only while the served config has an enabled prometheus
// plugin, and kong_upstream_target_health only while one of those has
// upstream_health_metrics (a global switch). Families without samples are left out.
#pragma once

#include <cstdint>
#include <string>

#include "common/metrics/metrics.h"
#include "data_plane/proxy/proxy_stats.h"
#include "data_plane/snapshot.h"
#include "data_plane/plugins/prometheus/series.h"

namespace portico::dp::plugins::prometheus {

struct NodeInfo {
  std::string node_id;  // kong_node_info, kong_nginx_connections_total
  std::string version;
  bool hybrid = false;  // synced from a control plane: kong_control_plane_connected
  bool cp_connected = false;
  int64_t cluster_cert_expiry_s = 0;  // kong_data_plane_cluster_cert_expiry_timestamp; 0: none
};

struct ExportOptions {
  SeriesStore* store = nullptr;     // null: SeriesStore::process()
  int64_t now_ms = -1;              // -1: the steady clock
  // A series whose route/service or consumer left the config is exported for this long, then
  // retired (docs/plugins.md). Long enough for requests still running on the old config.
  int64_t retire_after_ms = 60000;
};

// Appends Kong's families (in Kong's order: sorted by name) to `out`. `snapshot` may be null
// (no config yet).
void appendKongFamilies(const SnapshotConstSharedPtr& snapshot, const ProxyTotals& totals,
                        const NodeInfo& node, metrics::Writer* out,
                        const ExportOptions& options = {});

}  // namespace portico::dp::plugins::prometheus
