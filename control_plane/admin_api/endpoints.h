// The Admin API's endpoint families, one file each, and what they are given to work with.
// AdminApi's constructor calls these in the order below, which is the order requests are
// matched in: the fleet's and the control planes' own paths first (they name a control plane
// themselves), then the Kong endpoints every control plane has.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "control_plane/admin_api/admin_api.h"
#include "control_plane/admin_api/endpoint_table.h"
#include "control_plane/store/pg_store_impl.h"

namespace portico::cp::admin {

// What handlers use; AdminApi owns it and outlives the table, so handlers keep a reference.
struct EndpointDeps {
  PgConfigStore& store;
  const ServerCounters& counters;
  const AdminApiOptions& options;
  std::string node_id;  // this process's, for GET /
};

// fleet_endpoints.cc: /clustering/..., /control-planes/{id}/nodes, upstream health, answered
// by options.fleet (nothing is added when it is unset).
void addFleetEndpoints(EndpointTable& table, const EndpointDeps& deps);
// control_planes_endpoints.cc: /control-planes and /control-planes/{id or name} (Konnect).
void addControlPlanesEndpoints(EndpointTable& table, const EndpointDeps& deps);
// The name of the control plane `ref` (its id or name) names, in *name; or the answer
// saying why there is none (Konnect's 404, or the store's error). Blocking.
std::optional<ApiResponse> resolveControlPlane(PgConfigStore& store, const std::string& ref,
                                               std::string* name);
// info_endpoints.cc: GET /, /status, /metrics, /plugins/enabled, /schemas/...
void addInfoEndpoints(EndpointTable& table, const EndpointDeps& deps);
// data_plane_endpoints.cc: what portico-cp answers by way of its data planes or their
// credentials: /proxy-cache..., /vitals/..., /data-plane-certificates, /data-plane-tokens.
void addDataPlaneEndpoints(EndpointTable& table, const EndpointDeps& deps);
// catalog_endpoints.cc: ServiceHub's catalog, /service-catalog/... (root only: the catalog
// spans control planes).
void addCatalogEndpoints(EndpointTable& table, const EndpointDeps& deps);
// A catalog version's body carries an OpenAPI document of up to 10 MiB, JSON-escaped inside
// it: POST/PATCH .../service-catalog/services/{svc}/versions[/{ver}] may be this large, so
// the endpoint, not the transport, says the document is too large.
inline constexpr uint64_t kMaxCatalogBodyBytes = 24ull << 20;
bool isCatalogSpecUpload(std::string_view method, std::string_view target);
// portal_endpoints.cc: the Dev Portal's admin side, /portal/... (root only): developers,
// applications, registrations and their approval, portal settings.
void addPortalEndpoints(EndpointTable& table, const EndpointDeps& deps);
// entities_endpoints.cc: Kong's entities (/services, /services/{id}/routes, ...), /tags and
// /config.
void addEntitiesEndpoints(EndpointTable& table, const EndpointDeps& deps);

}  // namespace portico::cp::admin
