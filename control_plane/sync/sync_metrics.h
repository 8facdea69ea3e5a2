// The control plane's sync metrics for GET /metrics on the Admin listener: the SyncServer's
// counters and its transport's, and Kong's hybrid-mode per-data-plane gauges
// (kong_data_plane_last_seen, _config_hash, _version_compatible) so Kong dashboards and alerts
// keep working.
#pragma once

#include "common/metrics/metrics.h"
#include "control_plane/sync/sync_server.h"

namespace portico::cp {

void writeSyncMetrics(const SyncServer& server, metrics::Writer& w);

}  // namespace portico::cp
