// The hook through which the Admin API serves the fleet registry (GET /clustering/...,
// GET /control-planes/{id}/nodes) without a build dependency on control_plane/fleet/:
// portico-cp installs a FleetEndpoints at start-up, the Admin API asks it first. Header-only
// on purpose (the Admin API library does not link the fleet library).
#pragma once

#include <atomic>
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

// The installed endpoints, or nullptr. A leaked function-local static (no non-POD global):
// set once by main before the Admin API starts, cleared before the endpoints are destroyed.
inline std::atomic<FleetEndpoints*>& installedFleetEndpoints() {
  static auto* const slot = new std::atomic<FleetEndpoints*>(nullptr);
  return *slot;
}

}  // namespace portico::cp::fleet
