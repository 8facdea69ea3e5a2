// prometheus (Kong 3.10, PRIORITY 13): in the log phase, records the request's status code,
// bandwidth and latencies under Kong's labels into the worker's shard of the process' series
// store (series.h). The status listener exports them with the node-level families on /metrics
// (exposition.h). Recorded only when a route matched, as Kong does.
#include <string>

#include "common/config/schema.h"
#include "data_plane/plugins/consumers.h"
#include "data_plane/plugins/plugin.h"
#include "data_plane/plugins/prometheus/series.h"

namespace portico::dp::plugins::prometheus {
namespace {

class Config final : public PluginConfig {
 public:
  bool per_consumer = false;
  bool status_code_metrics = false;
  bool latency_metrics = false;
  bool bandwidth_metrics = false;

  std::string_view name() const override { return "prometheus"; }
  int32_t priority() const override { return 13; }
  PluginPtr createPlugin() const override;
};

class Prometheus final : public Plugin {
 public:
  explicit Prometheus(const Config& config) : config_(config) {}

  // Interface
  void onLog(const RequestContext& ctx) override {
    const config::v1::Route* route = ctx.route();
    if (route == nullptr ||
        !(config_.status_code_metrics || config_.bandwidth_metrics || config_.latency_metrics)) {
      return;
    }
    Sample s;
    // Kong's labels: the service's name, else its host ("" without a service); the route's
    // name, else its id; the consumer's username with per_consumer.
    if (const config::v1::Service* service = ctx.service(); service != nullptr) {
      s.service = service->has_name() ? service->name() : service->host();
    }
    s.route = route->has_name() ? route->name() : route->id();
    if (config_.per_consumer) {
      const Consumer* consumer = ctx.consumer();
      if (consumer != nullptr && consumer->entity != nullptr &&
          consumer->entity->has_username()) {
        s.consumer = consumer->entity->username();
      }
    }
    if (config_.status_code_metrics) {
      // No response at all: the client went away first, which nginx logs as 499.
      const int status = ctx.responseStatus();
      s.code = static_cast<uint16_t>(status > 0 && status < 1000 ? status : 499);
      s.from_service = ctx.responseSource() == RequestContext::Source::kService;
    }
    if (config_.bandwidth_metrics) {
      s.bandwidth = true;
      s.ingress = ctx.requestSize();
      s.egress = ctx.responseSize();
    }
    if (config_.latency_metrics) {
      const Latencies& l = ctx.latencies();
      s.latency = true;
      s.kong_ms = l.kong_ms;
      s.upstream_ms = l.upstream_ms;
      s.request_ms = l.request_ms;
    }
    SeriesStore::process().record(s);
  }

 private:
  const Config& config_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<Prometheus>(*this); }

// Schema-validated flags; an explicit null reads as false.
bool flag(const config::Json& conf, const char* name) {
  const auto it = conf.find(name);
  return it != conf.end() && it->is_boolean() && it->get<bool>();
}

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&,
                                                 const config::Json& conf) {
  auto c = std::make_shared<Config>();
  c->per_consumer = flag(conf, "per_consumer");
  c->status_code_metrics = flag(conf, "status_code_metrics");
  c->latency_metrics = flag(conf, "latency_metrics");
  c->bandwidth_metrics = flag(conf, "bandwidth_metrics");
  // upstream_health_metrics is global (any enabled instance turns it on): the exporter reads
  // it from the served config at scrape time (exposition.cc).
  return c;
}

}  // namespace portico::dp::plugins::prometheus
