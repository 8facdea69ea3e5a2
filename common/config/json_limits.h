// Parsing untrusted JSON (Admin API bodies, plugin configs, request bodies plugins read) with
// a nesting limit checked before the parse: a deeply nested value is cheap to send and
// expensive to hold (every copy, comparison and schema pass over it recurses), and
// '[' x 150000 once crashed the control plane.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace portico::config {

inline constexpr int kMaxJsonDepth = 64;

// The deepest nesting of arrays and objects in `text` (strings and escapes skipped), stopping
// early once it passes `stop_at`. Not a validator: malformed text may still fail to parse.
int jsonDepth(std::string_view text, int stop_at = kMaxJsonDepth + 1);

// The parsed value, or nullopt when `text` is not JSON or nests deeper than `max_depth`
// (*too_deep tells which).
std::optional<nlohmann::json> parseUntrustedJson(std::string_view text,
                                                 int max_depth = kMaxJsonDepth,
                                                 bool* too_deep = nullptr);

// The first string value or object key in `value` that no field may hold: one with a NUL
// byte (PostgreSQL text and jsonb refuse it, as do headers and hosts) or invalid UTF-8 (a
// form body can carry any byte; JSON cannot be written back out with it). `path` is
// Kong-style ("config.message", "tags.2": 1-based indexes).
struct BadText {
  std::string path;
  std::string reason;  // "must not contain NUL bytes" or "invalid UTF-8"
};
std::optional<BadText> findBadText(const nlohmann::json& value);

}  // namespace portico::config
