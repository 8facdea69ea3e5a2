// The fleet registry's endpoints (control_plane/fleet/): GET /clustering/data-planes,
// /clustering/status, /control-planes/{id}/nodes and the upstream health the data planes
// report. The registry is injected (AdminApiOptions::fleet) and answers them itself; this
// file only says which paths are its own.
#include <string>

#include "control_plane/admin_api/admin_util.h"
#include "control_plane/admin_api/endpoints.h"
#include "control_plane/fleet/fleet_endpoints.h"

namespace portico::cp::admin {

void addFleetEndpoints(EndpointTable& table, const EndpointDeps& deps) {
  fleet::FleetEndpoints* fleet = deps.options.fleet;
  if (fleet == nullptr) {
    return;  // the paths answer as any unknown one
  }
  // The registry reads the whole path (it resolves the control plane itself), so these are
  // root-only entries that spell /control-planes/{id} out.
  const auto answer = [fleet](const EndpointCall& call) {
    std::optional<fleet::FleetResponse> r = fleet->handle(call.method(), call.segments,
                                                          call.query);
    if (!r.has_value()) {
      return message(404, kNotFound);
    }
    return ApiResponse{r->status, std::move(r->body)};
  };
  for (const char* path : {"clustering/data-planes", "clustering/status",
                           "control-planes/{id}/nodes", "upstreams/{upstream}/health",
                           "control-planes/{id}/upstreams/{upstream}/health"}) {
    table.add(kGet, path, answer, Scope::kRootOnly);
  }
}

}  // namespace portico::cp::admin
