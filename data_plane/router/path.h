// Request-path handling shared by the router and the proxy, following Kong 3.x
// (kong/tools/uri.lua and the v0 path_handling table): normalization before matching, the
// upstream path join after a match, and re-escaping of the result.
#pragma once

#include <string>
#include <string_view>

namespace portico::dp::router {

// Normalizes a request path (no query) into *out: %XX of non-reserved characters decoded,
// reserved %XX kept and upper-cased, dot segments removed, "//" merged. Returns false when the
// path cannot be matched (bad %-escape or invalid UTF-8), which Kong answers with 404 (no route).
// `out` is cleared first; reuse it across requests to avoid allocation.
bool normalizePath(std::string_view raw, std::string* out);

// Appends the upstream path for path_handling v0 (the only mode under traditional_compatible):
// `base` is service.path ("/" when null), `normalized` the normalized request path, and
// `strip_len` how many leading bytes of it the route matched and strips (0 = nothing).
// The result is re-escaped (bytes outside RFC 3986 reserved+unreserved become %XX).
void appendUpstreamPath(std::string_view base, std::string_view normalized, size_t strip_len,
                        std::string* out);

// Appends `s`, %-encoding every byte outside RFC 3986 reserved + unreserved (and keeping '%').
void appendEscaped(std::string_view s, std::string* out);

}  // namespace portico::dp::router
