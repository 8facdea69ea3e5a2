// POST /config and GET /config (Kong's kong/api/routes/config.lua, there for DB-less nodes) for
// one config group: POST replaces the group's whole config with a declarative file in one
// transaction, one generation; GET exports the group's config in the same format, so that
// posting it back changes nothing. Called from the endpoint table (entities_endpoints.cc) on
// a DB worker thread.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "control_plane/admin_api/admin_api.h"
#include "control_plane/store/pg_store_impl.h"

namespace portico::cp {

// Whether the request is a POST to a /config endpoint (its body may be as large as a
// declarative file, declarative::kMaxFileBytes, rather than the Admin listener's usual limit).
// `method` upper-case, `target` as received (path and query).
bool isConfigUpload(std::string_view method, std::string_view target);

// Handles `req` for /config of `group`; `query` is its decoded query string. Store errors Kong
// has no own answer for go through `status_response` (the Admin API's one translation).
ApiResponse handleConfigEndpoint(PgConfigStore& store, const ApiRequest& req,
                                 const std::map<std::string, std::string>& query,
                                 const std::string& group,
                                 const std::function<ApiResponse(const absl::Status&)>&
                                     status_response);

}  // namespace portico::cp
