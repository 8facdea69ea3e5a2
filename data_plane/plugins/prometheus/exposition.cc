#include "data_plane/plugins/prometheus/exposition.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/config/schema.h"

namespace portico::dp::plugins::prometheus {
namespace {

constexpr char kWorkspace[] = "default";  // Kong OSS has one workspace
constexpr char kSubsystem[] = "http";     // this data plane proxies no stream traffic

// What a scrape needs from the served config, computed once per snapshot.
struct ConfigView {
  bool enabled = false;          // an enabled prometheus plugin exists (Kong's configure())
  bool upstream_health = false;  // one of them has upstream_health_metrics
  Live live;
};

std::shared_ptr<const ConfigView> buildView(const Snapshot& snap) {
  auto view = std::make_shared<ConfigView>();
  const config::v1::Snapshot& c = snap.config();
  for (const config::v1::Plugin& p : c.plugins()) {
    if (p.name() != "prometheus" || !p.enabled()) {
      continue;
    }
    view->enabled = true;
    const config::Json conf = config::Json::parse(p.config(), nullptr, false);
    if (conf.is_object()) {
      const auto it = conf.find("upstream_health_metrics");
      view->upstream_health |= it != conf.end() && it->is_boolean() && it->get<bool>();
    }
  }
  absl::flat_hash_map<std::string_view, const config::v1::Service*> services;
  for (const config::v1::Service& s : c.services()) {
    services.emplace(s.id(), &s);
  }
  for (const config::v1::Route& r : c.routes()) {
    std::string_view service;
    if (r.has_service_id()) {
      if (auto it = services.find(r.service_id()); it != services.end()) {
        service = it->second->has_name() ? it->second->name() : it->second->host();
      }
    }
    view->live.addRoute(service, r.has_name() ? r.name() : r.id());
  }
  for (const config::v1::Consumer& consumer : c.consumers()) {
    if (consumer.has_username()) {
      view->live.addConsumer(consumer.username());
    }
  }
  return view;
}

// The view of the snapshot last scraped (scrapes are rare; the status listener has one
// thread, tests may scrape from others).
std::shared_ptr<const ConfigView> viewOf(const SnapshotConstSharedPtr& snap) {
  static absl::Mutex mu;
  static std::weak_ptr<const Snapshot>* last = new std::weak_ptr<const Snapshot>();
  static std::shared_ptr<const ConfigView>* view = new std::shared_ptr<const ConfigView>();
  absl::MutexLock lock(&mu);
  if (last->lock() != snap || *view == nullptr) {
    *view = buildView(*snap);
    *last = snap;
  }
  return *view;
}

metrics::Labels routeLabels(const std::string& service, const std::string& route) {
  return {{"service", service}, {"route", route}, {"workspace", kWorkspace}};
}

template <size_t N>
void histogram(metrics::Writer* out, const std::vector<double>& bounds,
               const HistogramValues<N>& h, const metrics::Labels& labels) {
  out->histogramSample(bounds, std::vector<uint64_t>(h.buckets.begin(), h.buckets.end()),
                       static_cast<double>(h.sum), labels);
}

template <size_t N>
std::vector<double> bounds(const std::array<uint32_t, N>& b) {
  return std::vector<double>(b.begin(), b.end());
}

// One of Kong's three latency histograms, for the series that observed something.
template <typename Pick>
void latencyFamily(metrics::Writer* out, const char* name, const char* help,
                   const std::vector<double>& b, const Merged& m, Pick pick) {
  bool begun = false;
  for (const auto& [key, values] : m.latency) {
    const auto& h = pick(values);
    if (h.count() == 0) {
      continue;
    }
    if (!begun) {
      out->beginHistogram(name, help);
      begun = true;
    }
    histogram(out, b, h, routeLabels(key.first, key.second));
  }
}

void upstreamHealth(const Snapshot& snap, metrics::Writer* out) {
  struct Row {
    std::string upstream, target, address, state;
  };
  std::vector<Row> rows;
  for (const auto& balancer : snap.balancers()) {
    if (balancer == nullptr) {
      continue;
    }
    balancer::UpstreamReport report = balancer->healthReport();
    for (const balancer::TargetReport& t : report.targets) {
      if (t.addresses.empty()) {
        rows.push_back({report.name, t.target, "", "dns_error"});
        continue;
      }
      for (const balancer::AddressReport& a : t.addresses) {
        const char* state = t.health == "HEALTHCHECKS_OFF" ? "healthchecks_off"
                            : a.healthy                    ? "healthy"
                                                           : "unhealthy";
        rows.push_back({report.name, t.target, absl::StrCat(a.ip, ":", a.port), state});
      }
    }
  }
  if (rows.empty()) {
    return;
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return std::tie(a.upstream, a.target, a.address) < std::tie(b.upstream, b.target, b.address);
  });
  rows.erase(std::unique(rows.begin(), rows.end(),
                         [](const Row& a, const Row& b) {
                           return std::tie(a.upstream, a.target, a.address) ==
                                  std::tie(b.upstream, b.target, b.address);
                         }),
             rows.end());
  out->beginGauge("kong_upstream_target_health",
                  "Health status of targets of upstream. States = "
                  "healthchecks_off|healthy|unhealthy|dns_error, value is 1 when state is "
                  "populated.");
  // Kong sets all four states of each address, 1 on the current one (sorted by name).
  static const char* const kStates[] = {"dns_error", "healthchecks_off", "healthy", "unhealthy"};
  for (const Row& r : rows) {
    for (const char* state : kStates) {
      out->sample(r.state == state ? 1 : 0, {{"upstream", r.upstream},
                                             {"target", r.target},
                                             {"address", r.address},
                                             {"state", state},
                                             {"subsystem", kSubsystem}});
    }
  }
}

}  // namespace

void appendKongFamilies(const SnapshotConstSharedPtr& snapshot, const ProxyTotals& totals,
                        const NodeInfo& node, metrics::Writer* out,
                        const ExportOptions& options) {
  std::shared_ptr<const ConfigView> view;
  if (snapshot != nullptr) {
    view = viewOf(snapshot);
  }
  const bool enabled = view != nullptr && view->enabled;
  const int64_t now_ms =
      options.now_ms >= 0
          ? options.now_ms
          : std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now().time_since_epoch())
                .count();
  SeriesStore& store = options.store != nullptr ? *options.store : SeriesStore::process();
  // Collected on every scrape, enabled or not, so series of deleted routes still retire.
  // Without a config nothing is retired (nothing is known to be gone).
  const Merged m = store.collect(view != nullptr ? &view->live : nullptr, now_ms,
                                 options.retire_after_ms);

  if (enabled) {
    bool begun = false;
    for (const auto& [key, v] : m.bandwidth) {
      const auto& [service, route, consumer] = key;
      for (int d = 0; d < 2; ++d) {
        if (v[d] == 0) {
          continue;  // Kong adds only sizes > 0
        }
        if (!begun) {
          out->beginCounter("kong_bandwidth_bytes",
                            "Total bandwidth (ingress/egress) throughput in bytes");
          begun = true;
        }
        out->sample(static_cast<double>(v[d]), {{"service", service},
                                                 {"route", route},
                                                 {"direction", d == 0 ? "ingress" : "egress"},
                                                 {"workspace", kWorkspace},
                                                 {"consumer", consumer}});
      }
    }
  }
  if (node.hybrid) {
    out->gauge("kong_control_plane_connected", "Kong connected to control plane, 0 is unconnected",
               node.cp_connected ? 1 : 0);
    if (node.cluster_cert_expiry_s > 0) {
      out->gauge("kong_data_plane_cluster_cert_expiry_timestamp",
                 "Unix timestamp of Data Plane's cluster_cert expiry time",
                 static_cast<double>(node.cluster_cert_expiry_s));
    }
  }
  // The data plane's datastore is the config it serves: reachable once it has one.
  out->gauge("kong_datastore_reachable", "Datastore reachable from Kong, 0 is unreachable",
             snapshot != nullptr ? 1 : 0);
  if (enabled && !m.requests.empty()) {
    out->beginCounter("kong_http_requests_total",
                      "HTTP status codes per consumer/service/route in Kong");
    for (const auto& [key, n] : m.requests) {
      const auto& [service, route, code, from_service, consumer] = key;
      out->sample(static_cast<double>(n), {{"service", service},
                                           {"route", route},
                                           {"code", std::to_string(code)},
                                           {"source", from_service ? "service" : "kong"},
                                           {"workspace", kWorkspace},
                                           {"consumer", consumer}});
    }
  }
  if (enabled) {
    latencyFamily(out, "kong_kong_latency_ms",
                  "Latency added by Kong and enabled plugins for each service/route in Kong",
                  bounds(kKongLatencyBuckets), m,
                  [](const LatencyValues& v) -> const auto& { return v.kong; });
  }
  {
    // nginx's stub_status counters, from the proxy's own: "handled" equals "accepted" (the
    // proxy refuses no accepted connection), "total" counts requests, "waiting" is what is
    // neither reading a head nor processing a request (idle keep-alive).
    const uint64_t busy = totals.connections_reading + totals.connections_writing;
    const uint64_t waiting =
        totals.connections_active > busy ? totals.connections_active - busy : 0;
    out->beginGauge("kong_nginx_connections_total", "Number of connections by subsystem");
    const std::pair<const char*, uint64_t> states[] = {
        {"accepted", totals.connections_accepted}, {"handled", totals.connections_accepted},
        {"total", totals.requests_total},          {"active", totals.connections_active},
        {"reading", totals.connections_reading},   {"writing", totals.connections_writing},
        {"waiting", waiting}};
    for (const auto& [state, v] : states) {
      out->sample(static_cast<double>(v),
                  {{"node_id", node.node_id}, {"subsystem", kSubsystem}, {"state", state}});
    }
  }
  if (enabled) {
    out->counter("kong_nginx_metric_errors_total", "Number of nginx-lua-prometheus errors",
                 static_cast<double>(m.dropped));
  }
  out->gauge("kong_nginx_requests_total", "Number of requests total",
             static_cast<double>(totals.requests_total),
             {{"node_id", node.node_id}, {"subsystem", kSubsystem}});
  out->gauge("kong_node_info", "Kong Node metadata information", 1,
             {{"node_id", node.node_id}, {"version", node.version}});
  if (enabled) {
    const std::vector<double> b = bounds(kUpstreamLatencyBuckets);
    latencyFamily(out, "kong_request_latency_ms",
                  "Total latency incurred during requests for each service/route in Kong", b, m,
                  [](const LatencyValues& v) -> const auto& { return v.request; });
    latencyFamily(out, "kong_upstream_latency_ms",
                  "Latency added by upstream response for each service/route in Kong", b, m,
                  [](const LatencyValues& v) -> const auto& { return v.upstream; });
  }
  if (enabled && view->upstream_health) {
    upstreamHealth(*snapshot, out);
  }
}

}  // namespace portico::dp::plugins::prometheus
