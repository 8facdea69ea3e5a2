// Untrusted YAML (or JSON, which is YAML) text to nlohmann::json, with the line of every map
// key and sequence item kept for error messages. Built on libyaml's event parser (the parser
// under Kong's own lyaml) so limits hold while parsing: nesting depth, and alias expansion (a
// "billion laughs" file of a few hundred bytes would otherwise expand to gigabytes). Used by
// the declarative loader (common/declarative/declarative.h); knows nothing about Kong.
//
// Why libyaml and not yaml-cpp (the project's YAML library elsewhere): on Kong's burst.yml
// (442 KB) yaml-cpp's event parser alone took 45-58 ms, libyaml's 12-14 ms, and issue 15 gives
// `porticoctl validate` 100 ms for that file, start to exit.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <absl/container/flat_hash_map.h>
#include <absl/hash/hash.h>
#include <nlohmann/json.hpp>

namespace portico::declarative {

using Json = nlohmann::json;

// 1-based line of each value, by a pointer-like path: "" for the root, "/services/0/name".
// Keys holding '/' or '~' are escaped as in JSON Pointer (RFC 6901). Paths are kept as 64-bit
// hashes: a string per value was 44,000 allocations on burst.yml, and a collision (odds about
// n^2 / 2^65) could only misplace an error's line number.
class LineMap {
 public:
  void set(std::string_view path, int line) { lines_.emplace(key(path), line); }
  // The line of `path`, 0 if none was recorded.
  int find(std::string_view path) const {
    auto it = lines_.find(key(path));
    return it == lines_.end() ? 0 : it->second;
  }
  void reserve(size_t n) { lines_.reserve(n); }
  size_t size() const { return lines_.size(); }

 private:
  static uint64_t key(std::string_view path) { return absl::Hash<std::string_view>{}(path); }
  absl::flat_hash_map<uint64_t, int> lines_;
};

// Values aliases may add before max_alias_ratio applies.
inline constexpr uint64_t kAliasValuesFloor = 10'000;

struct YamlLimits {
  int max_depth = 64;                 // nested maps and sequences
  uint64_t max_nodes = 4'000'000;     // values in the document after alias expansion
  // Past kAliasValuesFloor, aliases may add at most this many times the values the text
  // itself holds (0: only max_nodes). Without it a 300-byte billion-laughs body cost 2 s of
  // CPU and ~350 MB before max_nodes stopped it. LoadOptions::yamlLimits() sets it.
  uint64_t max_alias_ratio = 0;
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
