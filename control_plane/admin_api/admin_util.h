// What every Admin API endpoint family shares: Kong's answer shapes (plain messages, Kong
// error bodies, the one translation of store statuses), its fixed messages, request-target
// and body parsing, and the small encoders links and ids need. No endpoint lives here.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "common/config/schema.h"
#include "common/config/validate.h"
#include "control_plane/admin_api/admin_api.h"

namespace portico::cp::admin {

using config::Json;

// Kong's error codes (kong/db/errors.lua) that our answers use.
enum KongError {
  kSchemaViolation = 2,
  kPrimaryKeyViolation = 3,
  kForeignKeyViolation = 4,
  kUniqueViolation = 5,
  kInvalidOffset = 7,
  kInvalidSize = 9,
  kInvalidOptions = 11,
  kForeignKeysUnresolved = 13,
};

// Fixed client-facing messages (rule 6): never raw text from the database layer.
inline constexpr char kNotFound[] = "Not found";
inline constexpr char kMethodNotAllowed[] = "Method not allowed";
inline constexpr char kCannotParseJson[] = "Cannot parse JSON body";
inline constexpr char kUnexpected[] = "An unexpected error occurred";
inline constexpr char kUnavailable[] =
    "The database is unavailable: cannot reach PostgreSQL; retry later";
inline constexpr char kInvalidCredentials[] =
    "Invalid credentials. Token or User credentials required";
inline constexpr char kDefaultGroup[] = "default";

ApiResponse json(int status, const Json& body);
ApiResponse message(int status, const std::string& text);
// Kong's {code, name, message[, fields]} body; the status follows the code.
ApiResponse kongError(int code, const std::string& name, const std::string& msg,
                      std::optional<Json> fields = std::nullopt);
// The one place the schema engine's errors become an Admin API body: Kong's schema violation
// (code 2, 400) with "schema violation (f: reason)" or "N schema violations (a; b)" and the
// `fields` tree mirroring the input.
ApiResponse schemaViolation(const config::FieldErrors& errors);
// Any store status a handler does not turn into a Kong-specific error: 404, 503 or 500 with
// a fixed message (the detail goes to the log).
ApiResponse statusResponse(const absl::Status& st);

std::string newUuid();  // random, version 4
// As ngx.escape_uri: everything but unreserved characters is %XX-escaped.
std::string uriEscape(std::string_view in);
std::string base64Encode(std::string_view in);
std::optional<std::string> base64Decode(std::string_view in);

struct ParsedTarget {
  std::vector<std::string> segments;  // URL-decoded path segments, empty ones dropped
  std::map<std::string, std::string> query;
};
ParsedTarget parseTarget(const std::string& target);

// A request body as the endpoints take it. kRefused: parsed, but holding what no field may
// (NUL, invalid UTF-8): a schema violation.
enum class BodyKind { kJson, kForm, kUnsupported, kInvalid, kRefused };

struct Body {
  BodyKind kind = BodyKind::kJson;
  Json value = Json::object();  // an empty body is an empty object
  bool too_deep = false;         // kInvalid because of config::kMaxJsonDepth
  std::string form_error;        // kInvalid form body: why
  config::FieldErrors refused;   // kRefused: the field and why
};

// JSON or a Kong form (application/x-www-form-urlencoded), by Content-Type.
Body readBody(const ApiRequest& req);
// The one message for a body that is not JSON we take (kInvalid).
std::string invalidBodyMessage(const Body& b);
// Kong's answer to a body an entity endpoint cannot take (400, or 415), or nullopt.
std::optional<ApiResponse> bodyError(const Body& b);

// Konnect's list paging (/control-planes, /service-catalog/...): page[size] (1-1000, default
// 100) and page[number] (1-based, default 1) from `query`. A bad value leaves *page as it was
// and returns the parameter and why ("must be an integer between 1 and 1000").
struct PageRequest {
  int size = 100;
  int number = 1;
};
std::optional<config::FieldError> readPageRequest(const std::map<std::string, std::string>& query,
                                                  PageRequest* page);
// Konnect's list body: {"data": data, "meta": {"page": {"number", "size", "total"}}}.
Json pageBody(Json data, const PageRequest& page, uint64_t total);

// Validates `input` as a `type` entity (the schema, then the size cap) into *out; Kong's
// schema-violation answer when it is not one.
std::optional<ApiResponse> processEntity(const std::string& type, const Json& input, Json* out);

}  // namespace portico::cp::admin
