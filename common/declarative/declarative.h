// Kong's declarative configuration format (kong.yml, decK files) to a config snapshot: the
// one loader behind `portico-dp --declarative_config` and `porticoctl validate`. It applies
// Kong 3.x's rules (kong/db/schema/others/declarative_config.lua): `_format_version` 1.1, 2.1
// or 3.0 (1.1/2.1 route paths migrated to 3.0's `~` regex form), nested entities, references
// by endpoint key or id, Kong's deterministic UUIDv5 ids, `_comment`/`_ignore`/`_transform`,
// and decK's `_info` (select_tags, defaults). Every entity is validated by the same schema
// code the Admin API runs (common/config/entities.h), then the snapshot as a whole by
// validateSnapshot, the check every DP runs on apply. Errors come as Kong's code-14 body
// (`fields` mirroring the file, `flattened_errors`) plus the file's line numbers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/declarative/yaml_json.h"
#include "portico/config/v1/config.pb.h"

namespace portico::declarative {

using Json = nlohmann::json;

// Files larger than this are refused before any parsing (burst.yml, 236 services, is 442 KB;
// a 10,000-route file about 4 MB).
inline constexpr uint64_t kMaxFileBytes = 32ull << 20;

// The start of the one problem reported when loading failed on an internal error (an
// exception inside the loader) rather than on the file.
inline constexpr char kInternalErrorPrefix[] = "internal error while loading the file: ";

struct LoadOptions {
  uint64_t max_bytes = kMaxFileBytes;
  int max_depth = 64;                  // nested maps/sequences in the file
  uint64_t max_nodes = 4'000'000;      // values after YAML alias expansion
  uint64_t max_alias_ratio = 10;       // YamlLimits::max_alias_ratio
  std::string group = "default";       // the snapshot's group
  uint64_t generation = 0;             // the snapshot's generation
  // Hand the loader's working state (the parsed file, two JSON trees per entity) to the
  // caller in LoadResult::scratch instead of freeing it before returning: freeing it is ~14%
  // of a load, which a caller may do on another thread or skip at exit.
  bool keep_scratch = false;
  // Threads for the per-entity work of large files (from 2,000 entities per thread): 10,000
  // routes load in 320 ms instead of 430 in porticoctl. 1 where every thread shares one
  // malloc arena (portico-cp): the two threads then queue on its lock and lose.
  size_t max_threads = 2;
  // Called once the file has parsed and every entity has its id, before any entity is
  // validated (and only if nothing failed so far), with each entity's (type, id): POST
  // /config starts deleting what the new config lacks meanwhile. The load may still fail.
  std::function<void(std::vector<std::pair<std::string, std::string>>)> on_ids;

  YamlLimits yamlLimits() const { return YamlLimits{max_depth, max_nodes, max_alias_ratio}; }
};

// One error, in the file's terms.
struct Problem {
  std::string entity_type;  // "services"; "" for the file itself (_format_version, syntax)
  std::string pointer;      // where in the file: "/services/3/routes/0" (JSON Pointer)
  std::string field;        // Kong's field path inside the entity ("paths.1", "@entity"), or ""
  std::string message;      // Kong's text
  int line = 0;             // 1-based line in the file (0: unknown)
  // Where Kong's `fields` puts it when not at `pointer`: reference and some uniqueness errors
  // are keyed by the entity's endpoint key or id ("/consumers/bob").
  std::string fields_pointer;
};

struct LoadResult {
  config::v1::Snapshot snapshot;  // valid only when ok()
  std::vector<Problem> problems;
  std::string format_version;     // as the file wrote it
  Json error_entities;            // failing entities by pointer (flattened_errors' `entity`)
  std::shared_ptr<void> scratch;  // with LoadOptions::keep_scratch; only to be freed

  bool ok() const { return problems.empty(); }
  // Kong's POST /config answer for an invalid file: {"code": 14, "name": "invalid declarative
  // configuration", "message": "declarative config is invalid: ...", "fields": {...},
  // "flattened_errors": [...]}; each flattened error's `errors[]` items carry a `line`.
  Json errorBody() const;
  // One line per problem, "<file>:<line>: <place>: <message>", at most `max_lines` of them.
  std::string describe(const std::string& file, size_t max_lines = 50) const;
};

// Loads `text` (YAML or JSON).
LoadResult loadDeclarative(std::string_view text, const LoadOptions& options = {});
// Reads and loads `path`; a file over options.max_bytes is refused before it is read.
LoadResult loadDeclarativeFile(const std::string& path, const LoadOptions& options = {});

// Kong's deterministic id: UUIDv5 (RFC 4122, SHA-1) of `key` in the namespace
// uuid5(fd02801f-0957-4a15-a55a-c8d9606f30b5, entity), as declarative_config.lua's
// generate_uuid.
std::string entityUuid(const std::string& entity, const std::string& key);
std::string uuid5(const std::string& namespace_uuid, std::string_view name);

// Kong's 2.x -> 3.0 route path migration (kong/db/migrations/migrate_path_280_300.lua): a
// path made only of [a-zA-Z0-9.-_~/%] is a prefix and is normalized; anything else is a 2.x
// regex and gets the `~` prefix, with %XX escapes of non-reserved characters decoded.
std::string migrateRoutePath(const std::string& path);

}  // namespace portico::declarative
