// AdminApi: Kong's Admin API semantics for every entity, Konnect-style control-plane groups
// (/control-planes[/{id or name}[/<any Kong endpoint>]]) and optional admin tokens,
// independent of the HTTP transport. Requests go through one endpoint table
// (endpoint_table.h) that the endpoint families (endpoints.h) fill at construction. handle()
// blocks on PostgreSQL, so the HTTP server calls it on a DB worker thread, never on its I/O
// thread. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "common/metrics/histogram.h"
#include "common/metrics/metrics.h"
#include "control_plane/admin_api/admin_auth.h"
#include "control_plane/admin_api/body_stream.h"
#include "control_plane/store/pg_store_impl.h"

namespace portico::cp {
namespace fleet {
class FleetEndpoints;
}  // namespace fleet
namespace admin {
class EndpointTable;
struct Endpoint;
struct EndpointDeps;
}  // namespace admin

struct ApiRequest {
  std::string method;  // upper-case
  std::string target;  // path and query, as received ("/services?size=3")
  std::string content_type;
  std::string body;
  std::string admin_token;  // the Kong-Admin-Token header, if any
  // A CORS preflight's Access-Control-Request-Headers, echoed as Kong does.
  std::string access_control_request_headers;
  // Filled only for a listener with its own handler (AdminServerOptions::handler): every
  // request header (names lower-cased), the client's address, and whether it came over TLS.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string client_address;
  bool tls = false;

  // The first header named `lower_name` (lower-case), or "".
  std::string header(std::string_view lower_name) const {
    for (const auto& [name, value] : headers) {
      if (name == lower_name) return value;
    }
    return "";
  }
};

struct ApiResponse {
  int status = 200;
  std::string body;          // JSON, or empty for 204
  std::string content_type;  // "" = JSON
  // Set: the body is written as it is produced (chunked), `body` unused. See body_stream.h.
  BodyStream stream;
  // Headers beside Content-Type (a preflight's Allow and Access-Control-*).
  std::vector<std::pair<std::string, std::string>> headers;
};

// The one REST translation of internal status codes (rule 6): kInvalidArgument 400,
// kNotFound 404, kAlreadyExists 409, kFailedPrecondition 400, kUnavailable 503, ... 500.
int toHttpStatus(absl::StatusCode code);

// Admin API request latency, from the request read to its response ready (the database work
// included), by method and status class: portico_cp_admin_request_duration_seconds.
class AdminLatency {
 public:
  AdminLatency();
  void observe(std::string_view method, int status, double seconds);
  void write(metrics::Writer& w) const;  // the whole family; series seen so far

 private:
  static constexpr size_t kMethods = 6;  // GET, POST, PUT, PATCH, DELETE, other
  static constexpr size_t kClasses = 5;  // 1xx .. 5xx
  std::vector<std::unique_ptr<metrics::Histogram>> histograms_;  // kMethods x kClasses
};

// Counters shown by GET /status and /metrics; owned by the HTTP server, read here.
struct ServerCounters {
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> connections_active{0};
  std::atomic<uint64_t> total_requests{0};
  AdminLatency latency;
};

struct AdminApiOptions {
  // Every request needs a valid Kong-Admin-Token (401 without); read-only tokens get 403 on
  // POST/PUT/PATCH/DELETE.
  bool require_auth = false;
  // Adds the rest of the process's metrics (sync, fleet, change-log pruning) to GET /metrics,
  // after the Admin API's own. Called on a DB worker thread; must be thread-safe.
  std::function<void(metrics::Writer&)> metrics;
  // proxy-cache's endpoints (/proxy-cache...): sends a purge, or with `lookup` a lookup, of
  // `cache_key` ("" = every entry) to the group's data planes and waits for their answers
  // (portico-cp wires it to the sync server). Unset: those endpoints answer 404.
  struct CachePurgeReply {
    uint32_t data_planes = 0;
    uint32_t answered = 0;
    uint32_t purged = 0;
    std::string entry_json;
  };
  std::function<CachePurgeReply(const std::string& group, const std::string& cache_key,
                                bool lookup)>
      cache_purge;
  // The vitals endpoints (/vitals/...; portico-cp wires control_plane/vitals/): `segments`
  // start with "vitals". Unset: those paths answer 404. Called on a DB worker thread.
  std::function<ApiResponse(const std::string& method, const std::string& group,
                            const std::vector<std::string>& segments,
                            const std::map<std::string, std::string>& query)>
      vitals;
  // Issued data plane credentials (/data-plane-certificates, /data-plane-tokens; portico-cp
  // wires control_plane/provisioning/ when it runs --cluster_mtls=pki --keyring). Unset:
  // those paths answer 404 saying what enables them.
  std::function<ApiResponse(const std::string& method, const std::string& group,
                            const std::vector<std::string>& segments, const std::string& body)>
      provisioning;
  // The fleet registry (control_plane/fleet/): /clustering/..., /control-planes/{id}/nodes,
  // upstream health. Not owned; must outlive the AdminApi. Unset: those paths answer 404.
  fleet::FleetEndpoints* fleet = nullptr;
};

class AdminApi {
 public:
  // `store` and `counters` must outlive this object.
  AdminApi(PgConfigStore& store, const ServerCounters& counters,
           const AdminApiOptions& options = {});
  ~AdminApi();
  // The endpoint table's handlers point into this object.
  AdminApi(const AdminApi&) = delete;
  AdminApi& operator=(const AdminApi&) = delete;

  // Answers an OPTIONS request as Kong answers a CORS preflight: 204 with the path's
  // methods, without the token (browsers send none on a preflight). The transport adds
  // Access-Control-Allow-Origin to every answer (cors.h).
  ApiResponse handle(const ApiRequest& request);

  // With --admin_auth=on: the 401/403 (or 503) the request's token earns before its body is
  // read, or nullopt when it may go on. Blocking (may query the database).
  std::optional<ApiResponse> checkToken(const std::string& method, const std::string& token);
  bool requiresAuth() const { return auth_ != nullptr; }

 private:
  ApiResponse preflight(const admin::Endpoint* endpoint, const ApiRequest& request) const;

  PgConfigStore& store_;
  const AdminApiOptions options_;
  std::unique_ptr<AdminAuthenticator> auth_;  // set when options_.require_auth
  // What the handlers use; declared before table_, whose handlers refer to it.
  std::unique_ptr<const admin::EndpointDeps> deps_;
  std::unique_ptr<const admin::EndpointTable> table_;
};

}  // namespace portico::cp
