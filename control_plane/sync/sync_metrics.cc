#include "control_plane/sync/sync_metrics.h"

#include <cstdlib>
#include <map>
#include <string>
#include <utility>

#include "absl/time/time.h"

namespace portico::cp {
namespace {

// Kong exports tonumber("0x" .. md5) as a float. Ours is a SHA-256: its first 13 hex digits
// (52 bits) fit a double exactly, so equal values mean equal configs.
double hashValue(const std::string& hex) {
  if (hex.size() < 13) {
    return 0;
  }
  return static_cast<double>(std::strtoull(hex.substr(0, 13).c_str(), nullptr, 16));
}

}  // namespace

void writeSyncMetrics(const SyncServer& server, metrics::Writer& w) {
  const SyncServerStats s = server.stats();
  auto counter = [&w](const char* name, const char* help, uint64_t v) {
    w.counter(name, help, static_cast<double>(v));
  };
  auto gauge = [&w](const char* name, const char* help, uint64_t v) {
    w.gauge(name, help, static_cast<double>(v));
  };
  gauge("portico_cp_sync_streams_active", "Data-plane sync streams open now.", s.streams_active);
  counter("portico_cp_sync_streams_total", "Data-plane sync streams opened.", s.streams_total);
  gauge("portico_cp_sync_initial_syncs_active",
        "Streams in their first sync (load-shedding slots in use).", s.syncing);
  w.beginCounter("portico_cp_sync_pushes_total", "Config pushes started on a stream, by kind.");
  w.sample(static_cast<double>(s.delta_pushes), {{"kind", "delta"}});
  w.sample(static_cast<double>(s.full_pushes), {{"kind", "full"}});
  counter("portico_cp_sync_chunks_sent_total", "ConfigChunk messages written.", s.chunks_sent);
  counter("portico_cp_sync_bytes_sent_total", "ConfigChunk message bytes written, all streams.",
          s.bytes_sent);
  counter("portico_cp_sync_acks_total", "Pushes acknowledged by data planes.", s.acks);
  counter("portico_cp_sync_nacks_total", "Pushes rejected by data planes (NACK).", s.nacks);
  counter("portico_cp_sync_encodes_total",
          "Full snapshots encoded (once per generation, whatever the number of DPs).", s.encodes);
  counter("portico_cp_sync_delta_encodes_total", "Deltas encoded (once per base and generation).",
          s.delta_encodes);
  counter("portico_cp_sync_compat_encodes_total",
          "Payloads encoded for an older data-plane compatibility class.", s.compat_encodes);
  counter("portico_cp_sync_store_loads_total", "Config reads from PostgreSQL.", s.snapshot_loads);
  counter("portico_cp_sync_store_load_failures_total", "Config reads that failed (retried).",
          s.load_failures);
  counter("portico_cp_sync_refused_total",
          "Streams refused (certificate, version, group); each is logged.", s.refused);
  counter("portico_cp_sync_shed_total",
          "Streams told to come back later (RESOURCE_EXHAUSTED, load shedding).", s.shed);
  counter("portico_cp_sync_liveness_drops_total", "Streams ended after missed heartbeats.",
          s.liveness_drops);
  gauge("portico_cp_cluster_connections_active", "Cluster listener connections open now.",
        s.connections_active);
  counter("portico_cp_cluster_connections_total", "Cluster listener connections accepted.",
          s.connections_total);
  counter("portico_cp_cluster_tls_handshake_failures_total",
          "Cluster TLS handshakes that failed (refused certificates included).",
          s.tls_handshake_failures);
  counter("portico_cp_cluster_protocol_errors_total",
          "Cluster connections closed for an HTTP/2 protocol error.", s.protocol_errors);

  server.writeMetrics(w);

  // Kong's names and labels (prometheus plugin, hybrid mode), one sample per known DP.
  const std::vector<NodeStatus> nodes = server.nodes();
  auto labels = [](const NodeStatus& n) {
    return metrics::Labels{{"node_id", n.node_id}, {"hostname", n.hostname}, {"ip", n.ip}};
  };
  w.beginGauge("kong_data_plane_last_seen", "Last time a data plane was heard from (unix time).");
  for (const NodeStatus& n : nodes) {
    w.sample(static_cast<double>(absl::ToUnixSeconds(n.last_seen)), labels(n));
  }
  w.beginGauge("kong_data_plane_config_hash",
               "The config a data plane runs: its hash's first 52 bits as a number.");
  for (const NodeStatus& n : nodes) {
    w.sample(hashValue(n.applied_hash), labels(n));
  }
  w.beginGauge("kong_data_plane_version_compatible",
               "1 if the data plane's version may be served by this control plane.");
  for (const NodeStatus& n : nodes) {
    metrics::Labels l = labels(n);
    l.emplace_back("kong_version", n.version);
    w.sample(n.sync_status == "version_incompatible" ? 0 : 1, l);
  }
  std::map<std::pair<std::string, bool>, uint64_t> by_status;
  for (const NodeStatus& n : nodes) {
    by_status[{n.sync_status, n.connected}]++;
  }
  w.beginGauge("portico_cp_data_planes",
               "Data planes this control plane knows, by sync_status and connection.");
  for (const auto& [key, count] : by_status) {
    w.sample(static_cast<double>(count),
             {{"sync_status", key.first}, {"connected", key.second ? "true" : "false"}});
  }
}

}  // namespace portico::cp
