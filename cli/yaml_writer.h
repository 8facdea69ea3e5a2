// JSON values written as block-style YAML for the files porticoctl produces (openapi2config,
// convert). Strings stay plain only when every YAML 1.1 and 1.2 reader takes them back as the
// same string; anything else is written double-quoted with JSON's escapes, which YAML's
// double-quoted style accepts unchanged. Map keys come out in the JSON object's order.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace portico::cli {

std::string toYaml(const nlohmann::json& value);

// Whether `s` can be written as a plain (unquoted) YAML scalar and read back as this string.
bool isPlainYamlString(const std::string& s);

}  // namespace portico::cli
