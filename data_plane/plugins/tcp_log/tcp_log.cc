// tcp-log (Kong 3.10, PRIORITY 7): Kong's serialized request sent to host:port over TCP
// (TLS with `tls`, SNI `tls_sni`), one JSON object and a newline per request, on a kept
// connection (`keepalive` ms idle). A failed connect or write drops the entries it carried
// (Kong logs the error and does not retry), counted in portico_dp_tcp_log_failed_total.
// The worker only serializes and queues (logging/stream_log.h).
#include "data_plane/plugins/logging/stream_log.h"
#include "data_plane/plugins/plugin_stats.h"

namespace portico::dp::plugins::tcp_log {
namespace {

PluginCounter g_dropped("portico_dp_tcp_log_dropped_total",
                        "Log entries tcp-log dropped because its queue was full.");
PluginCounter g_failed("portico_dp_tcp_log_failed_total",
                       "Log entries tcp-log could not send (connect or write failed).");
PluginCounter g_sent("portico_dp_tcp_log_sent_total", "Log entries tcp-log sent.");

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&,
                                                 const config::Json& conf) {
  return logging::buildStreamLog(logging::Transport::kTcp, "tcp-log", 7, conf,
                                 {&g_dropped, &g_failed, &g_sent});
}

}  // namespace portico::dp::plugins::tcp_log
