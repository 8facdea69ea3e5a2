// The one semantic validation path for config entities. The control plane runs it on every
// Admin API write (after JSON decoding) and the data plane runs it again on every snapshot it
// applies, so a config the CP accepts is exactly a config the DP accepts.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "portico/config/v1/config.pb.h"

namespace portico::config {

// One rejected field. `field` is a Kong-style path ("host", "paths.1", "service.id"; 1-based
// array indexes as in Kong's messages) or "@entity" for entity-level checks; `reason` is
// Kong's message text ("must not have a port").
struct FieldError {
  std::string entity_type;  // "services", "routes", ...
  std::string entity_id;
  std::string field;
  std::string reason;

  bool operator==(const FieldError&) const = default;
};
using FieldErrors = std::vector<FieldError>;

FieldErrors validateService(const v1::Service& service);
FieldErrors validateRoute(const v1::Route& route);
class KeyAuthTable;

// Every entity, plus what ties them together (unique ids and names, routes naming services
// that exist). Empty means the snapshot may be applied. `key_auth`: the snapshot's key-auth
// credentials when the DP holds them as a table (common/config/key_auth_table.h) instead of
// in the proto; checked with the same rules and messages.
// `check_entities` false skips each entity's own rules (validateService, validateRoute and
// the schema processing of the others) and keeps what ties them together (ids, names, unique
// keys, foreign keys): for a caller that has just run those very rules on every entity, the
// declarative loader. The DP always checks everything.
FieldErrors validateSnapshot(const v1::Snapshot& snapshot,
                             const KeyAuthTable* key_auth = nullptr,
                             bool check_entities = true);

// Length caps (bytes, as Kong's len_max counts them; "length must be at most N"). Kong's
// typedefs set none on these fields; ours keep unique-indexed values far below PostgreSQL's
// index row limit (~2.7 KB) and keep what every DP holds bounded. docs/design.md, "Field
// length caps", gives the reasons for each number.
inline constexpr size_t kMaxNameLength = 255;    // names, usernames, custom_id, acl group
inline constexpr size_t kMaxHostLength = 253;    // a DNS name (RFC 1035), without :port
inline constexpr size_t kMaxTagLength = 255;     // one tag
inline constexpr size_t kMaxPathLength = 4096;   // service path, route path (regex or prefix)
inline constexpr size_t kMaxSecretLength = 1024; // credential keys, secrets, passwords
// "length must be at most N" when `value` is longer than `max`, else "".
std::string checkMaxLength(std::string_view value, size_t max);
// kMaxHostLength on a host, or on the name part of "host:port" when `optional_port`.
std::string checkHostLength(std::string_view value, bool optional_port);

// Reusable field rules (Kong's typedefs). Each returns the Kong reason text, empty if valid.
// Each checks its length cap first, so no message echoes an oversized value.
std::string checkUuid(const std::string& value);          // "expected a valid UUID"
std::string checkUtf8Name(const std::string& value);      // typedefs.utf8_name
std::string checkHost(const std::string& value);          // typedefs.host: no port/wildcard
std::string checkServicePath(const std::string& value);   // typedefs.path
std::string checkRouterPath(const std::string& value);    // typedefs.router_path (+ RE2)
std::string checkWildcardHost(const std::string& value);  // route hosts (optional :port)
std::string checkTag(const std::string& value);
std::string checkSni(const std::string& value);           // typedefs.wildcard_host, no port/IP
// "name", "ipv4", "ipv6" for a host with optional ":port" (Kong's utils.normalize_ip), ""
// when it is neither; `has_port` tells whether a port was given.
std::string classifyHost(const std::string& value, bool* has_port);
bool isUuid(const std::string& value);
bool isValidUtf8(std::string_view value);
// Kong's normalization of a prefix path (percent-decoding of unreserved characters,
// upper-case hex, dot-segment removal), as used for the "non-normalized path" check.
std::string normalizePath(const std::string& path);

}  // namespace portico::config
