// `porticoctl convert --from kong-gateway-2.x --to kong-gateway-3.x`: decK's `convert` for a
// Kong 2.x declarative file. As decK: every route path that looks like a regex (a character
// outside [a-zA-Z0-9._~/%-]) and lacks the `~` prefix gets it, and _format_version becomes
// "3.0"; the rest of the file is left as it is. Unlike decK (go-database-reconciler's
// file.Content), routes at the top level are migrated too, unknown keys are kept rather than
// dropped, and no random namespace is invented for Enterprise rate-limiting-advanced plugins.
// Kong's own 2.x -> 3.0 migration (declarative::migrateRoutePath, what the loader does with a
// 1.1/2.1 file) also decodes %XX escapes in regex paths; decK's convert does not, nor do we.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/document.h"

namespace portico::cli {

// decK's utils.IsPathRegexLike.
bool isRegexLikePath(std::string_view path);

struct ConvertReport {
  std::string old_format_version;          // as the input had it ("" when absent)
  std::vector<std::string> changed_routes;  // id, else name, else place, of each changed route
};

// The converted file, or an error naming the place.
absl::StatusOr<declarative::Json> convertKong2xTo3x(const Document& input,
                                                    ConvertReport* report);

struct ConvertOptions {
  std::string from;
  std::string to;
  std::string input;            // "-" reads stdin
  std::string output = "-";     // "-" writes stdout
  std::string format;           // "yaml" or "json"; "" picks by the output's extension
};

// The command: converts, reports what changed on `err` as decK does, checks the result with
// the declarative loader (a problem there is a warning), writes it. Returns the exit code.
int runConvert(const ConvertOptions& options, FILE* err);

// decK's flags: --from, --to, --input-file, --output-file, --format (also as --flag=value).
absl::StatusOr<ConvertOptions> parseConvertArgs(const std::vector<std::string_view>& args);

}  // namespace portico::cli
