// Kong Admin API JSON <-> config protos. Decoding reports Kong's type errors ("expected a
// string", "unknown field", ...) as FieldErrors, fills Kong's defaults and runs the semantic
// validation (validate.h), so a caller gets every error of an input in one list. Encoding
// emits every Kong field, unset ones as null, exactly as Kong's Admin API returns them.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/config/schema.h"
#include "portico/config/v1/config.pb.h"

namespace portico::config {

using Json = nlohmann::json;

// Decodes a POST/PUT body (a JSON object) into `out` with defaults filled in. The `url`
// shorthand sets protocol, host, port and path. Returns every type and validation error
// (empty = valid). `id`, `created_at` and `updated_at` are taken when present.
FieldErrors decodeService(const Json& in, v1::Service* out);

// As decodeService for routes. A `service: {"name": "x"}` reference cannot be resolved here:
// it is returned in `service_name` (and `out->service_id` stays unset) for the caller to
// resolve against the store; `service: {"id": ...}` sets service_id.
FieldErrors decodeRoute(const Json& in, v1::Route* out, std::optional<std::string>* service_name);

Json encodeService(const v1::Service& service);
Json encodeRoute(const v1::Route& route);

// PATCH: `current` (an encoded entity) with the top-level keys of `patch` replacing its own;
// a service's `url` is expanded first so it overrides protocol/host/port/path.
Json mergePatch(Json current, const Json& patch, bool is_service);

// Kong's schema-violation error (code 2) for a non-empty error list:
// {"code":2,"name":"schema violation","message":"...","fields":{...}}.
Json schemaViolationBody(const FieldErrors& errors);
// "schema violation (f: msg)" or "N schema violations (a; b)": @entity first, then by field.
std::string schemaViolationMessage(const FieldErrors& errors);
// The `fields` object mirroring the input shape (arrays positioned by 1-based element).
Json fieldsObject(const FieldErrors& errors);

// The semantic rules of a decoded service or route (what decode runs after type checking).
FieldErrors validateService(const v1::Service& service);
FieldErrors validateRoute(const v1::Route& route);

}  // namespace portico::config
