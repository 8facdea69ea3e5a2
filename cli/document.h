// Reading and writing the YAML/JSON documents porticoctl's file commands (openapi2config,
// convert) take and produce, under the declarative loader's limits: size checked before the
// file is read, nesting depth and alias expansion while it is parsed (yaml_json.h).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/declarative/yaml_json.h"

namespace portico::cli {

struct Document {
  std::string name;  // for messages: the path, or "<stdin>"
  declarative::Json value;
  declarative::LineMap lines;  // line of each value by JSON Pointer
};

// Reads and parses `path` ("-" reads stdin). Errors are one line: "<file>:<line>: <reason>".
absl::StatusOr<Document> readDocument(const std::string& path);
// Parses `text` already in memory, named `name` in errors.
absl::StatusOr<Document> parseDocument(std::string name, std::string_view text);

// "<file>:<line>: <pointer>: <message>", the line being that of `pointer` or of its nearest
// ancestor the parser saw.
std::string placeError(const Document& doc, const std::string& pointer,
                       const std::string& message);

enum class OutputFormat { kYaml, kJson };
// JSON when `path` ends in ".json", YAML otherwise (stdout too).
OutputFormat outputFormatFor(const std::string& path);
std::string render(const declarative::Json& value, OutputFormat format);
// Writes `text` to `path` ("-": stdout) through a temporary file renamed into place, so a
// failed write leaves an existing file alone.
absl::Status writeOutput(const std::string& path, const std::string& text);

// Command-line scanning shared by the file commands: "--name VALUE" or "--name=VALUE" at
// args[*i] for any of `names`; advances *i past the value. Returns false when args[*i] is not
// one of them; an error when the value is missing.
absl::StatusOr<bool> takeFlag(const std::vector<std::string_view>& args, size_t* i,
                              std::initializer_list<std::string_view> names, std::string* value);

}  // namespace portico::cli
