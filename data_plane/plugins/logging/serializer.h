// Kong's log serializer (kong.log.serialize(), kong/pdk/log.lua) for the *-log plugins: one
// request as the JSON object Kong's logging plugins send, field for field:
//   request {uri, url, querystring, method, headers, size, tls?}, upstream_uri,
//   upstream_status, response {status, headers, size}, latencies {kong, proxy, request,
//   receive}, tries?, authenticated_entity?, route?, service?, consumer?, client_ip,
//   started_at, source, workspace, workspace_name, correlation_id? (correlation-id's value).
// Request headers `authorization` and `proxy-authorization` are "REDACTED". Header names are
// lower-cased; a repeated header (or query argument) becomes an array, as Kong's
// get_headers()/get_query() return them. Entities are Kong's JSON without null fields (as
// Kong's cached rows), with `ws_id`.
//
// Runs on the proxy worker in onLog: the text is written with plain appends (no JSON DOM, no
// allocation but the output's), and each entity's JSON is built once per worker thread and
// plugin config, then reused.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "data_plane/plugins/plugin.h"

namespace portico::dp::plugins::logging {

// The default workspace's id and name (Kong's ctx.workspace / workspace_name). Portico has no
// workspaces: every entity is in "default", whose id is this fixed value.
inline constexpr std::string_view kWorkspaceId = "00000000-0000-0000-0000-000000000000";
inline constexpr std::string_view kWorkspaceName = "default";

// A serial for a logging plugin's config (built once per snapshot, never reused): the entity
// JSON cache is keyed by it, so a text never outlives the snapshot its entity came from.
uint64_t newCacheSerial();

// Appends the serialized request (one JSON object, no trailing newline) to `out`.
void serialize(const RequestContext& ctx, uint64_t cache_serial, std::string* out);

// JSON string escaping as lua-cjson does it (control characters, '"' and '\\'; other bytes
// pass through), without the surrounding quotes.
void appendJsonEscaped(std::string_view in, std::string* out);

}  // namespace portico::dp::plugins::logging
