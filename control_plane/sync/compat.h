// Config compatibility for data planes of an older minor version (Kong's removed_fields /
// Konnect's compatibility table): a small table of rules "a DP older than major.minor gets
// field F of entity type E stripped". The rules that apply to a DP version form its
// compatibility class; the CP encodes each generation once per class (not per DP) and
// records every stripped value as a structured issue on the node.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "control_plane/sync/node_registry.h"
#include "portico/config/v1/config.pb.h"

namespace portico::cp {

struct CompatRule {
  std::string id;                   // stable, e.g. "P0001"
  uint32_t before_major = 0;        // applies to DPs whose (major, minor) is lower than this
  uint32_t before_minor = 0;
  std::string entity_type;          // Snapshot field name: "upstreams", "services", ...
  std::vector<std::string> fields;  // fields of that entity the older DP does not know
  std::string description;
};

// The built-in table. Kept short and explicit; a rule is added when a field is added.
const std::vector<CompatRule>& builtinCompatRules();

// The ids (comma-joined, table order) of the rules that apply to `dp_version`; "" = the
// native payload (also for an unparsable version, which the version check refuses anyway).
std::string compatClass(const std::string& dp_version, const std::vector<CompatRule>& rules);

// One issue per rule that applies to the class (no entity): what HelloReply announces.
std::vector<CompatibilityIssue> compatRuleIssues(const std::string& compat_class,
                                                 const std::vector<CompatRule>& rules);

// Strips the class's fields from `snapshot` in place; returns one issue per entity and field
// whose value was dropped (at most `max_issues`; `*total` gets the full count if non-null).
std::vector<CompatibilityIssue> downgradeSnapshot(config::v1::Snapshot* snapshot,
                                                  const std::string& compat_class,
                                                  const std::vector<CompatRule>& rules,
                                                  size_t max_issues = 100,
                                                  size_t* total = nullptr);

}  // namespace portico::cp
