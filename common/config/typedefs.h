// Kong's typedefs (kong/db/schema/typedefs.lua): the reusable field rules (hosts, paths, names,
// tags, SNIs, UUIDs) with Kong's messages, our length caps, and the Field builders the entity
// descriptions share (id, timestamps, tags, a credential's skeleton).
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "common/config/schema.h"

namespace portico::config {

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


// ---- Field builders ----
Field idField();                                   // uuid, auto
Field timestampField(const std::string& name, bool is_float = false);  // auto
Field tagsField();                                 // set of checkTag strings
Field utf8NameField(const std::string& name);      // typedefs.utf8_name, capped
Field consumerField();                             // required, cascading consumer reference
// A credential entity (id, created_at, consumer, `fields`, tags), as Kong's auth plugins'
// daos.lua declare them.
EntitySchema credentialSchema(const std::string& name, const std::string& path,
                              const std::string& endpoint_key, std::vector<Field> fields);

// typedefs.header_name's message ("" when valid).
std::string headerNameCheck(const std::string& name);
// kong.tools.http.validate_header_name: ^[a-zA-Z0-9-_]+$ (so not empty).
bool isHeaderName(std::string_view name);
// The transformer plugins' "name:value" entries, Kong's "^([^:]+):*(.-)$": the name runs to
// the first ':', every following ':' is skipped and the rest is the value. False when there
// is no name (an empty entry or a leading ':').
bool splitNameValue(std::string_view entry, std::string_view* name, std::string_view* value);
Field headerNameField(const std::string& name);
std::vector<Json> jsonList(std::initializer_list<const char*> items);
const std::vector<Json>& httpProtocols();  // typedefs.protocols_http
// typedefs.protocols: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp.
const std::vector<Json>& allProtocols();

}  // namespace portico::config
