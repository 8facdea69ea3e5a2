// udp-log (Kong 3.10, PRIORITY 8): Kong's serialized request sent to host:port over UDP
// as one datagram per request (the JSON object, no newline). A failed send is counted in
// portico_dp_udp_log_failed_total.
// The worker only serializes and queues (logging/stream_log.h).
#include "data_plane/plugins/logging/stream_log.h"
#include "data_plane/plugins/plugin_stats.h"

namespace portico::dp::plugins::udp_log {
namespace {

PluginCounter g_dropped("portico_dp_udp_log_dropped_total",
                        "Log entries udp-log dropped because its queue was full.");
PluginCounter g_failed("portico_dp_udp_log_failed_total",
                       "Log entries udp-log could not send (connect or write failed).");
PluginCounter g_sent("portico_dp_udp_log_sent_total", "Log entries udp-log sent.");

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&,
                                                 const config::Json& conf) {
  return logging::buildStreamLog(logging::Transport::kUdp, "udp-log", 8, conf,
                                 {&g_dropped, &g_failed, &g_sent});
}

}  // namespace portico::dp::plugins::udp_log
