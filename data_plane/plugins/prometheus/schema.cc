// prometheus's config schema (Kong 3.10, PRIORITY 13). Every flag defaults to false (Kong 3.0+).
// ai_metrics and wasm_metrics are accepted as Kong has them: this data plane runs no AI proxy
// and no Wasm filters, so they have nothing to add (Kong exports nothing for them either then).
#include "common/config/entities.h"

namespace portico::dp::plugins::prometheus {

config::PluginSchema schema() {
  using config::Field;
  config::PluginSchema p = config::httpPluginSchema(
      "prometheus", 13,
      {Field::boolean("per_consumer").def(false), Field::boolean("status_code_metrics").def(false),
       Field::boolean("ai_metrics").def(false), Field::boolean("latency_metrics").def(false),
       Field::boolean("bandwidth_metrics").def(false),
       Field::boolean("upstream_health_metrics").def(false),
       Field::boolean("wasm_metrics").def(false)});
  // Kong's typedefs.protocols: any protocol, the HTTP ones by default. This data plane proxies
  // no stream traffic, so a stream protocol here has nothing to count (as in a Kong without
  // stream listeners).
  p.protocols = config::jsonList(
      {"grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp"});
  p.default_protocols = config::httpProtocols();
  return p;
}

}  // namespace portico::dp::plugins::prometheus
