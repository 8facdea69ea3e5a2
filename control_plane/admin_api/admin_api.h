// AdminApi: Kong's Admin API semantics for the entities built so far (services, routes),
// independent of the HTTP transport. handle() blocks on PostgreSQL, so the HTTP server calls
// it on a DB worker thread, never on its I/O thread. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "control_plane/store/pg_store_impl.h"

namespace portico::cp {

struct ApiRequest {
  std::string method;  // upper-case
  std::string target;  // path and query, as received ("/services?size=3")
  std::string content_type;
  std::string body;
};

struct ApiResponse {
  int status = 200;
  std::string body;  // JSON, or empty for 204
};

// The one REST translation of internal status codes (rule 6): kInvalidArgument 400,
// kNotFound 404, kAlreadyExists 409, kFailedPrecondition 400, kUnavailable 503, ... 500.
int toHttpStatus(absl::StatusCode code);

// Counters shown by GET /status; owned by the HTTP server, read here.
struct ServerCounters {
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> connections_active{0};
  std::atomic<uint64_t> total_requests{0};
};

class AdminApi {
 public:
  // `store` and `counters` must outlive this object.
  AdminApi(PgConfigStore& store, const ServerCounters& counters);

  ApiResponse handle(const ApiRequest& request);

 private:
  PgConfigStore& store_;
  const ServerCounters& counters_;
  const std::string node_id_;
};

}  // namespace portico::cp
