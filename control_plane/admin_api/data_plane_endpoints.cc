// What the Admin API answers by way of the data planes, through services portico-cp injects
// (AdminApiOptions): proxy-cache lookups and purges sent to a group's DPs, the vitals they
// report, and the credentials they join with. An endpoint whose service is not injected
// answers as an unknown path, except the credentials', which say what enables them.
#include <string>

#include "control_plane/admin_api/admin_util.h"
#include "control_plane/admin_api/endpoints.h"

namespace portico::cp::admin {
namespace data_plane {
namespace {

// proxy-cache's Admin API (kong/plugins/proxy-cache/api.lua), for the whole group: DELETE
// /proxy-cache purges every DP's cache; GET|DELETE /proxy-cache/{key} and
// /proxy-cache/{plugin}/caches/{key} look up or purge one key on every DP. Kong purges the
// node it is asked and broadcasts to the others; here every DP of the group is asked at once
// and the answer waits for them (at most kPurgeWait).
ApiResponse proxyCache(const EndpointDeps& deps, const EndpointCall& call) {
  const std::vector<std::string>& seg = call.segments;
  const std::string& m = call.method();
  const bool all = seg.size() == 1;
  const bool by_plugin = seg.size() == 4;
  if (by_plugin) {
    const absl::StatusOr<Json> plugin = deps.store.getJson(call.group, "plugins", seg[1]);
    if (!plugin.ok()) {
      return absl::IsNotFound(plugin.status()) ? message(404, kNotFound)
                                               : statusResponse(plugin.status());
    }
    if (plugin->value("name", "") != "proxy-cache") {
      return message(404, kNotFound);
    }
  }
  const std::string key = all ? "" : seg.back();
  const AdminApiOptions::CachePurgeReply r =
      deps.options.cache_purge(call.group, key, m == "GET");
  if (all) {
    return {204, ""};
  }
  if (m == "GET") {
    if (r.entry_json.empty()) {
      return message(404, kNotFound);
    }
    return {200, r.entry_json, ""};
  }
  return r.purged > 0 ? ApiResponse{204, ""} : message(404, kNotFound);
}

ApiResponse credentials(const EndpointDeps& deps, const EndpointCall& call) {
  if (!deps.options.provisioning) {
    return message(404, "issuing data plane credentials needs portico-cp --cluster_mtls=pki "
                        "--keyring=FILE (the control plane's own CA)");
  }
  return deps.options.provisioning(call.method(), call.group, call.segments, call.request.body);
}

}  // namespace
}  // namespace data_plane

void addDataPlaneEndpoints(EndpointTable& table, const EndpointDeps& deps) {
  if (deps.options.cache_purge) {
    const auto purge = [&deps](const EndpointCall& call) {
      return data_plane::proxyCache(deps, call);
    };
    table.add(kDelete, "proxy-cache", purge);
    table.add(kGet | kDelete, "proxy-cache/{key}", purge);
    table.add(kGet | kDelete, "proxy-cache/{plugin}/caches/{key}", purge);
  }
  if (deps.options.vitals) {
    const auto vitals = [&deps](const EndpointCall& call) {
      return deps.options.vitals(call.method(), call.group, call.segments, call.query);
    };
    table.add(kGet, "vitals/requests", vitals);
    table.add(kGet, "vitals/summary", vitals);
  }
  // The credentials service answers wrong methods itself, in Konnect's error shape.
  const auto issued = [&deps](const EndpointCall& call) {
    return data_plane::credentials(deps, call);
  };
  for (const std::string kind : {"data-plane-certificates", "data-plane-tokens"}) {
    table.add(kGet | kPost, kind, issued, Scope::kAnyGroup, MethodCheck::kHandler);
    table.add(kGet | kDelete, kind + "/{id}", issued, Scope::kAnyGroup, MethodCheck::kHandler);
  }
}

}  // namespace portico::cp::admin
