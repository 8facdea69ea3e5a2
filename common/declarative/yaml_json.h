// Untrusted YAML (or JSON, which is YAML) text to nlohmann::json, with the line of every map
// key and sequence item kept for error messages. Built on yaml-cpp's event parser so limits
// hold while parsing: nesting depth, and alias expansion (a "billion laughs" file of a few
// hundred bytes would otherwise expand to gigabytes). Used by the declarative loader
// (common/declarative/declarative.h); knows nothing about Kong.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <absl/container/flat_hash_map.h>
#include <nlohmann/json.hpp>

namespace portico::declarative {

using Json = nlohmann::json;

// 1-based line of each value, by a pointer-like path: "" for the root, "/services/0/name".
// Keys holding '/' or '~' are escaped as in JSON Pointer (RFC 6901).
using LineMap = absl::flat_hash_map<std::string, int>;

struct YamlLimits {
  int max_depth = 64;                 // nested maps and sequences
  uint64_t max_nodes = 4'000'000;     // values in the document after alias expansion
};

struct YamlParse {
  bool ok = false;
  Json value;
  LineMap lines;
  std::string error;  // "line 3, column 5: <reason>" when !ok
  int error_line = 0;
};

// Parses one YAML document. Plain scalars resolve as YAML 1.2's core schema (null, ~, true,
// false, integers, floats, .inf, .nan); quoted or !!str-tagged ones stay strings. `<<` merge
// keys are applied (explicit keys win). Duplicate keys, non-scalar keys and a second
// document are errors.
YamlParse parseYaml(std::string_view text, const YamlLimits& limits = {});

// Escapes one path segment (JSON Pointer: '~' -> "~0", '/' -> "~1").
std::string pointerSegment(std::string_view key);

// The line recorded for `path` or its nearest ancestor that has one (0 if none).
int lineOf(const LineMap& lines, std::string path);

}  // namespace portico::declarative
