// A real proxy for plugin behaviour tests: entities are written as Kong JSON and go through
// the shared schema (defaults, validation) and validateSnapshot exactly as a pushed snapshot
// does, then the snapshot is built and served on port 0 in front of the scripted upstream
// (tests/unit/data_plane/proxy/wire.h: it echoes "<METHOD> <TARGET>\n<name>: <value>\n...").
#pragma once

#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "absl/status/status.h"
#include "common/config/entities.h"
#include "common/config/validate.h"
#include "data_plane/proxy/proxy_server.h"
#include "tests/unit/data_plane/proxy/wire.h"

namespace portico::dp::testing {

class PluginFixture {
 public:
  // A service "svc" (the upstream) and a route "r" on path "/" to it.
  PluginFixture();

  // Adds an entity (Kong JSON, as the Admin API takes it; foreign keys as {"id": ...}) after
  // the shared schema processed it. Returns the stored entity (id, defaults filled). A
  // schema error fails the test.
  config::Json add(const std::string& entity, config::Json input);
  // Adds a service / a route on `path` to `service_id` ("" = serviceless); returns the id.
  std::string addService(const std::string& name);
  std::string addRoute(const std::string& name, const std::string& path,
                       const std::string& service_id);
  // Validates (validateSnapshot) and builds the snapshot, then serves it (starting the proxy
  // on the first call). Returns the first error, as a DP NACK would carry it.
  absl::Status apply();

  // One request on a fresh connection: `head_extra` are "Name: value\r\n" lines.
  WireResponse get(const std::string& target, const std::string& head_extra = "");
  WireResponse send(const std::string& raw_request);

  // A header line the upstream received ("X-Consumer-ID: ..." in the echo), "" if none.
  static std::string upstreamHeader(const WireResponse& r, const std::string& name);
  // The request line the upstream received ("GET /path?query").
  static std::string upstreamRequestLine(const WireResponse& r);

  // The DP status listener's /metrics body for this proxy (portico_dp_* and Kong's kong_*).
  std::string metrics() const;
  const SnapshotStore& store() const { return store_; }
  const ProxyStats* stats() const { return proxy_ ? &proxy_->stats() : nullptr; }

  config::v1::Snapshot& config() { return cfg_; }
  const std::string& serviceId() const { return service_id_; }
  const std::string& routeId() const { return route_id_; }
  int port() const { return proxy_->port(); }

 private:
  ScriptedUpstream upstream_;
  SnapshotStore store_;
  std::unique_ptr<ProxyServer> proxy_;
  config::v1::Snapshot cfg_;
  std::string service_id_;
  std::string route_id_;
  uint64_t generation_ = 0;
};

}  // namespace portico::dp::testing
