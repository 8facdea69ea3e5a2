// request-transformer's config values, shared by the schema (CP and DP validation) and the
// implementation: Kong's "name:value" entries and the $(...) templates of pl.template.
//
// Kong renders a value with pl.template, so `$(expr)` may be any Lua expression over the
// sandbox environment. This data plane has no Lua: it supports the references Kong documents
// (`headers`, `query_params`, `uri_captures`, `shared`, each indexed once: `.name`,
// `['name']`, `["name"]` or `[n]`) and refuses any other expression when the config is
// written, so a configured transformation is never skipped or rendered differently.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace portico::dp::plugins::request_transformer {

enum class Source : uint8_t { kHeaders, kQueryParams, kUriCaptures, kShared };

struct TemplatePart {
  bool literal = true;
  std::string text;            // the literal text, or the key looked up in `source`
  Source source = Source::kHeaders;
  bool numeric = false;        // `[n]`: a numbered capture (a Lua integer key)
};

struct Template {
  std::vector<TemplatePart> parts;
  bool plain() const { return parts.size() <= 1 && (parts.empty() || parts[0].literal); }
};

// Parses pl.template's inline `$(...)` (balanced parentheses; anything else is literal text).
// Returns "" or why the value cannot be rendered by this data plane.
std::string parseTemplate(std::string_view value, Template* out);

// The schema's reason for a value that cannot be rendered (Kong's check_for_value wording):
// "value '<v>' is not in supported format, error:<why>"; "" when it parses.
std::string templateCheck(std::string_view value);

}  // namespace portico::dp::plugins::request_transformer
