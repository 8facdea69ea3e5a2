// Shared pieces of the conformance runners (tests/conformance/*.yaml): YAML-to-JSON with the
// files' scalar typing, ${var} substitution, and dotted-path lookups into JSON bodies.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

namespace portico::testing {

using Vars = std::map<std::string, std::string>;

// YAML -> JSON with YAML 1.2 core-schema typing of plain scalars; quoted scalars stay strings.
nlohmann::json toJson(const YAML::Node& n);

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string uriEscape(const std::string& in);

// Replaces ${name} (and ${name|uri_escape}) with saved values; unknown names become "".
std::string substitute(const std::string& in, const Vars& vars);
nlohmann::json substitute(const nlohmann::json& in, const Vars& vars);

// "a.b.c" inside a JSON object; nullptr when any step is missing.
const nlohmann::json* lookup(const nlohmann::json& body, const std::string& path);

// tests/conformance/<file> in the source tree.
std::string conformanceCasesPath(const std::string& file);

}  // namespace portico::testing
