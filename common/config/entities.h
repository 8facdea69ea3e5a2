// The registry of Kong 3.x entity schemas for the schema engine (schema.h): one description
// per entity in common/config/entities/<entity>.cc, the bundled plugins' config schemas, and
// the one entry point that validates and normalizes any entity's Kong JSON.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/config/proto_json.h"
#include "common/config/schema.h"
#include "common/config/typedefs.h"

namespace portico::config {

// Every entity type in dependency order (parents before children): services, routes,
// consumers, plugins, upstreams, targets, certificates, snis, ca_certificates,
// keyauth_credentials, basicauth_credentials, jwt_secrets, hmacauth_credentials, acls.
const std::vector<const EntitySchema*>& allEntitySchemas();
// By entity name ("consumers"); nullptr if unknown.
const EntitySchema* findEntitySchema(const std::string& name);

// A bundled plugin: its config record and the scopes it refuses. Each is defined in its own
// folder, data_plane/plugins/<name>/schema.cc, and listed in data_plane/plugins/builtin.inc.
struct PluginSchema {
  std::string name;
  int32_t priority = 0;            // Kong's PRIORITY: higher runs first
  std::string version = "3.10.0";  // Kong's VERSION for the bundled plugins we match
  Field config;                    // a record named "config"
  bool no_consumer = false;        // typedefs.no_consumer: `consumer` must be null
  std::vector<Json> protocols;     // allowed protocols (and the default set)
  std::vector<Json> default_protocols;  // the default set when it differs (empty: protocols)
  std::vector<EntityCheck> checks; // on the whole plugin entity ("config.allow", ...)
};
// The enabled plugins (every one the data plane implements), sorted by name. Defined by the
// plugin registry's schema list (data_plane/plugins/schemas.cc).
const std::vector<PluginSchema>& pluginSchemas();
// The same, in builtin.inc order (the DP registry pairs it with the build functions).
const std::vector<PluginSchema>& pluginSchemasInListOrder();
const PluginSchema* findPluginSchema(const std::string& name);
// The plugin entity schema specialized for one plugin (config record, scope rules).
const EntitySchema& pluginEntitySchema(const PluginSchema& plugin);
// GET /schemas/plugins/{name}.
Json pluginSchemaToJson(const PluginSchema& plugin);

// An HTTP plugin (protocols_http) with the given PRIORITY and config record fields.
PluginSchema httpPluginSchema(std::string name, int32_t priority, std::vector<Field> config);

// Validates and normalizes `input` as entity `entity` (every field present, unset = null,
// defaults filled, derived fields such as a CA certificate's cert_digest computed). Foreign
// keys must already be {"id": ...}. Credentials' auto fields (key, secret) are generated when
// absent. `id`, `created_at` and `updated_at` are kept when given, else null for the caller.
FieldErrors processEntityJson(const std::string& entity, const Json& input, Json* out);

// The overall entity size cap, on the Admin API's writes and validations: the normalized
// entity's JSON text (what is stored and what every DP receives) may be at most
// maxEntityBytes(entity). Field caps (validate.h) come first and name the field; this catches
// the rest (thousands of tags or paths, a huge plugin config). Not re-checked on DP apply, so
// changing a cap never makes DPs refuse a stored config. See docs/design.md.
inline constexpr size_t kMaxEntityBytes = 64 * 1024;
inline constexpr size_t kMaxLargeEntityBytes = 256 * 1024;  // plugins, certificates
size_t maxEntityBytes(const std::string& entity);
// {"@entity": "entity size must be at most N bytes (got M)"} when `entity_json` is larger.
FieldErrors checkEntitySize(const std::string& entity, const Json& entity_json);

// Form bodies: turns string values into numbers/booleans/arrays where the schema says so.
Json coerceFormValues(const std::string& entity, const Json& input);

// Kong's basic-auth password hash: hex(sha1(password .. consumer_id)).
std::string basicAuthHash(const std::string& password, const std::string& consumer_id);

}  // namespace portico::config
