// Plugin chains compiled once per snapshot: for every route, the plugins that may run on it in
// Kong's order (PRIORITY descending, then name descending), each with the instance Kong's
// scope precedence picks when no consumer is known. Consumer-scoped instances are resolved
// per request, when the walk reaches the plugin (after an auth plugin set the consumer), as
// Kong's plugins iterator does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/config/validate.h"
#include "data_plane/plugins/consumers.h"
#include "data_plane/plugins/plugin.h"
#include "portico/config/v1/config.pb.h"

namespace portico::dp {

struct PluginInstance {
  const config::v1::Plugin* entity = nullptr;
  PluginConfigConstSharedPtr config;
  // Dynamic ordering (`ordering.before.access` / `ordering.after.access`): plugin names.
  std::vector<std::string> run_before, run_after;
};

// Kong's lookup_cfg order: 1 route+service+consumer, 2 route+consumer, 3 service+consumer,
// 4 route+service, 5 consumer, 6 route, 7 service, 8 global. Lower wins.
struct ChainEntry {
  int32_t kind = 0;                      // index of the plugin name in the snapshot's set
  const PluginInstance* base = nullptr;  // best instance without a consumer (null: none)
  uint8_t base_rank = 0;                 // its rank: 4, 6, 7 or 8
  bool consumer_scoped = false;          // consumer-scoped instances of this plugin exist
  uint16_t priority_pos = 0;             // position in the route's priority-ordered chain
};
using Chain = std::vector<ChainEntry>;

class PluginChains {
 public:
  // Builds every enabled HTTP plugin through the registry. Fails (kInvalidArgument, message
  // "plugins <id>: <field>: <reason>") on a plugin this data plane does not implement or a
  // config it cannot run: never fail open.
  // `errors` (optional) receives the same failure as a field error for the NACK.
  static absl::StatusOr<std::unique_ptr<const PluginChains>> build(
      const config::v1::Snapshot& config, config::FieldErrors* errors = nullptr);
  // Chains of global instances only, run on every request (tests of the proxy's phases).
  static std::unique_ptr<const PluginChains> globalOnly(
      std::vector<PluginConfigConstSharedPtr> configs);

  // The chain of the route at `route_index` in config().routes().
  const Chain& forRoute(int32_t route_index) const {
    return route_index >= 0 && static_cast<size_t>(route_index) < routes_.size()
               ? routes_[static_cast<size_t>(route_index)]
               : global_;
  }
  // The order the access phase walks the route's chain in: forRoute() unless an instance on
  // it sets `ordering` (then `*reordered`; every later phase still runs in priority order,
  // as Kong's dynamic ordering only moves access handlers).
  const Chain& accessForRoute(int32_t route_index, bool* reordered) const {
    auto it = access_orders_.find(route_index);
    *reordered = it != access_orders_.end();
    return *reordered ? it->second : forRoute(route_index);
  }
  // Global instances only: requests no route matched (Kong runs them after the 404).
  const Chain& global() const { return global_; }
  // Global instances with a rewrite phase, in order (Kong runs them before routing).
  const Chain& rewrite() const { return rewrite_; }
  bool empty() const { return instances_.empty(); }
  size_t instanceCount() const { return instances_.size(); }
  const PluginInstance& instance(size_t i) const { return *instances_[i]; }

  // The instance that applies for this entry now (null: the plugin does not run). `route`
  // and `service` are the matched ones (null when none); `consumer` the authenticated one.
  const PluginInstance* resolve(const ChainEntry& entry, const config::v1::Route* route,
                                const config::v1::Service* service,
                                const Consumer* consumer) const;

 private:
  struct Kind {
    std::string_view name;
    int32_t priority = 0;
    const PluginInstance* global = nullptr;
    absl::flat_hash_map<std::string_view, const PluginInstance*> by_route;
    absl::flat_hash_map<std::string_view, const PluginInstance*> by_service;
    absl::flat_hash_map<std::string, const PluginInstance*> by_route_service;  // "r|s"
    absl::flat_hash_map<std::string_view, std::vector<const PluginInstance*>> by_consumer;
  };

  std::vector<std::unique_ptr<PluginInstance>> instances_;
  std::vector<Kind> kinds_;
  std::vector<Chain> routes_;  // indexed like config().routes()
  absl::flat_hash_map<int32_t, Chain> access_orders_;  // only routes with dynamic ordering
  Chain global_;
  Chain rewrite_;
};

}  // namespace portico::dp
