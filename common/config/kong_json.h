// What the Admin API still takes from here: Kong's schema-violation body (code 2) for a list
// of FieldErrors, and PATCH's merge with a service's `url` expanded first. Services and routes
// are described in the schema engine (common/config/entities/); issue 15 step 3 moves these
// to the Admin API.
#pragma once

#include <string>

#include "common/config/schema.h"

namespace portico::config {

// PATCH: `current` (an entity as stored) with the top-level keys of `patch` replacing its
// own; a service's `url` is expanded first so it overrides protocol/host/port/path.
Json mergePatch(Json current, const Json& patch, bool is_service);

// Kong's schema-violation error (code 2) for a non-empty error list:
// {"code":2,"name":"schema violation","message":"...","fields":{...}}.
Json schemaViolationBody(const FieldErrors& errors);
// "schema violation (f: msg)" or "N schema violations (a; b)": @entity first, then by field.
std::string schemaViolationMessage(const FieldErrors& errors);

}  // namespace portico::config
