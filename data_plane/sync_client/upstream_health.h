// The DP's balancer health as the sync Heartbeat carries it (Heartbeat.upstreams): one
// UpstreamHealth per balancer of the snapshot being served, from Balancer::healthReport().
// Kept out of portico_dp_sync_client so the client does not depend on the snapshot/balancer
// libraries; portico-dp passes upstreamHealth() as SyncClient::Options::health.
#pragma once

#include <vector>

#include "data_plane/snapshot.h"
#include "portico/sync/v1/sync.pb.h"

namespace portico::dp {

// Empty when `snapshot` is null or has no upstreams.
std::vector<sync::v1::UpstreamHealth> upstreamHealth(const Snapshot* snapshot);

}  // namespace portico::dp
