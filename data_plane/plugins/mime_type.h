// Media types as Kong's kong.tools.mime_type reads them (RFC 2045 grammar): shared by the
// plugins that match a Content-Type (response-transformer's JSON check, proxy-cache's
// content_type list).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace portico::dp::plugins {

struct MediaType {
  std::string type, subtype;                  // lower-cased; "*" and "*" for a bare "*"
  std::map<std::string, std::string> params;  // names lower-cased, values unquoted
};

// `type/subtype *(; attribute=value)`, surrounding spaces allowed; nullopt when malformed.
std::optional<MediaType> parseMediaType(std::string_view text);

// mime_type.includes(this, other): same type, and the same subtype, a `*` subtype, or a
// `+<subtype>` suffix of other's (application/json includes application/problem+json).
bool includes(const MediaType& self, const MediaType& other);

}  // namespace portico::dp::plugins
