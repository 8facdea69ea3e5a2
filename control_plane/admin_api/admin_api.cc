#include "control_plane/admin_api/admin_api.h"

#include <optional>
#include <string>
#include <vector>

#include "common/config/validate.h"
#include "control_plane/admin_api/admin_util.h"
#include "control_plane/admin_api/endpoint_table.h"
#include "control_plane/admin_api/endpoints.h"

namespace portico::cp {

namespace {
constexpr const char* kLatencyMethods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "other"};
}  // namespace

AdminLatency::AdminLatency() {
  for (size_t i = 0; i < kMethods * kClasses; ++i) {
    histograms_.push_back(
        std::make_unique<metrics::Histogram>(metrics::Histogram::secondsBounds()));
  }
}

void AdminLatency::observe(std::string_view method, int status, double seconds) {
  size_t m = kMethods - 1;
  for (size_t i = 0; i + 1 < kMethods; ++i) {
    if (method == kLatencyMethods[i]) m = i;
  }
  const size_t c = status >= 100 && status < 600 ? static_cast<size_t>(status / 100 - 1) : 4;
  histograms_[m * kClasses + c]->observe(seconds);
}

void AdminLatency::write(metrics::Writer& w) const {
  w.beginHistogram("portico_cp_admin_request_duration_seconds",
                   "Admin API requests, from read to response ready, by method and status "
                   "class.");
  for (size_t m = 0; m < kMethods; ++m) {
    for (size_t c = 0; c < kClasses; ++c) {
      const metrics::Histogram& h = *histograms_[m * kClasses + c];
      if (h.count() > 0) {
        h.write(w, {{"method", kLatencyMethods[m]}, {"status", std::to_string(c + 1) + "xx"}});
      }
    }
  }
}

int toHttpStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return 503;
    case absl::StatusCode::kUnimplemented:
      return 501;
    default:
      return 500;
  }
}

namespace {

admin::EndpointTable buildTable(const admin::EndpointDeps& deps) {
  admin::EndpointTable table;
  admin::addFleetEndpoints(table, deps);
  admin::addControlPlanesEndpoints(table, deps);
  admin::addCatalogEndpoints(table, deps);
  admin::addPortalEndpoints(table, deps);
  admin::addInfoEndpoints(table, deps);
  admin::addDataPlaneEndpoints(table, deps);
  admin::addEntitiesEndpoints(table, deps);
  return table;
}

}  // namespace

AdminApi::AdminApi(PgConfigStore& store, const ServerCounters& counters,
                   const AdminApiOptions& options)
    : store_(store),
      options_(options),
      deps_(std::make_unique<const admin::EndpointDeps>(
          admin::EndpointDeps{store, counters, options_, admin::newUuid()})),
      table_(std::make_unique<const admin::EndpointTable>(buildTable(*deps_))) {
  if (options_.require_auth) {
    auth_ = std::make_unique<AdminAuthenticator>(store_);
  }
}

AdminApi::~AdminApi() = default;

std::optional<ApiResponse> AdminApi::checkToken(const std::string& m, const std::string& token) {
  // A CORS preflight carries no credentials (browsers never send them on one) and its answer
  // holds nothing but a path's methods, as Kong's does.
  if (auth_ == nullptr || m == "OPTIONS") {
    return std::nullopt;
  }
  if (token.empty()) {
    return admin::message(401, admin::kInvalidCredentials);
  }
  auto caller = auth_->authenticate(token);
  if (!caller.ok()) {
    return absl::IsUnauthenticated(caller.status())
               ? admin::message(401, admin::kInvalidCredentials)
               : admin::statusResponse(caller.status());
  }
  if (caller->role != kRoleAdmin && m != "GET" && m != "HEAD") {
    const char* action = m == "POST" ? "create" : m == "DELETE" ? "delete" : "update";
    return admin::message(403, caller->name + ", you do not have permissions to " + action +
                                   " this resource");
  }
  return std::nullopt;
}

ApiResponse AdminApi::handle(const ApiRequest& req) {
  if (std::optional<ApiResponse> denied = checkToken(req.method, req.admin_token)) {
    return *std::move(denied);
  }
  const admin::ParsedTarget t = admin::parseTarget(req.target);
  // Decoded bytes reach PostgreSQL as text: invalid UTF-8 or NUL there is a client error.
  const auto clean = [](const std::string& s) {
    return config::isValidUtf8(s) && s.find('\0') == std::string::npos;
  };
  for (const std::string& s : t.segments) {
    if (!clean(s)) {
      return admin::message(400, "invalid UTF-8 or NUL in the request path");
    }
  }
  for (const auto& [k, v] : t.query) {
    if (!clean(k) || !clean(v)) {
      return admin::message(400, "invalid UTF-8 or NUL in the query string");
    }
  }
  const auto& seg = t.segments;
  const bool preflight_request = req.method == "OPTIONS";
  std::vector<std::string> params;
  if (const admin::Endpoint* e = table_->find(seg, /*root=*/true, &params)) {
    if (preflight_request) {
      return preflight(e, req);
    }
    return dispatch(*e, {req, seg, t.query, std::move(params), admin::kDefaultGroup, ""});
  }
  if (seg.size() <= 2 || seg[0] != "control-planes") {
    return admin::message(404, admin::kNotFound);
  }
  // /control-planes/{id}/<any Kong endpoint>: the same table, for that control plane.
  const std::vector<std::string> rest(seg.begin() + 2, seg.end());
  const admin::Endpoint* e = table_->find(rest, /*root=*/false, &params);
  if (preflight_request) {
    return preflight(e, req);  // by the path's shape: no lookup of the control plane
  }
  std::string group;
  if (std::optional<ApiResponse> missing = admin::resolveControlPlane(store_, seg[1], &group)) {
    return *std::move(missing);
  }
  if (e == nullptr) {
    return admin::message(404, admin::kNotFound);
  }
  return dispatch(*e, {req, rest, t.query, std::move(params), std::move(group),
                       "/control-planes/" + admin::uriEscape(seg[1])});
}

// Kong's answer to OPTIONS on any path it routes (kong/api/api_helpers.lua): 204, the
// path's methods, and the headers the browser asked to send (or Content-Type).
ApiResponse AdminApi::preflight(const admin::Endpoint* endpoint, const ApiRequest& req) const {
  if (endpoint == nullptr) {
    return admin::message(404, admin::kNotFound);
  }
  ApiResponse r{204, ""};
  const std::string allow = admin::allowHeader(endpoint->methods);
  r.headers = {{"Allow", allow},
               {"Access-Control-Allow-Methods", allow},
               {"Access-Control-Allow-Headers", req.access_control_request_headers.empty()
                                                    ? "Content-Type"
                                                    : req.access_control_request_headers}};
  return r;
}

}  // namespace portico::cp
