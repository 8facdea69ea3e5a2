// The interface through which the Admin API serves the fleet registry (GET /clustering/...,
// GET /control-planes/{id}/nodes, upstream health) without a build dependency on
// control_plane/fleet/: portico-cp passes its FleetRegistry in AdminApiOptions::fleet, and
// control_plane/admin_api/fleet_endpoints.cc routes those paths to it. Header-only on
// purpose (the Admin API library does not link the fleet library).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace portico::cp::fleet {

struct FleetResponse {
  int status = 200;
  std::string body;  // JSON
};

class FleetEndpoints {
 public:
  virtual ~FleetEndpoints() = default;
  // Called on an Admin API DB worker thread (may block on PostgreSQL). Returns nullopt for
  // paths it does not serve. Thread-safe.
  virtual std::optional<FleetResponse> handle(const std::string& method,
                                              const std::vector<std::string>& segments,
                                              const std::map<std::string, std::string>& query) = 0;
};

}  // namespace portico::cp::fleet
