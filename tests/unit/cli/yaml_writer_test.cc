// cli/yaml_writer: what it writes reads back (through the loader's YAML parser) as the same
// JSON, including strings YAML would otherwise take for other types.
#include "cli/yaml_writer.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/declarative/yaml_json.h"

namespace portico::cli {
namespace {

using Json = nlohmann::json;

TEST_CASE("yaml writer: round trip through the loader's parser") {
  const Json value = Json::parse(R"({
    "_format_version": "3.0",
    "s": ["", "true", "No", "null", "~", "~/pets/(?<id>[^/]+)$", "1.1", "0x10", ".inf", "-x",
          "a: b", "a #b", "x:", "key: {a}", "é", "tab\there", "line\nbreak", "<<", "@x", "*x",
          "plain-text_1.2/ok", " lead", "trail "],
    "n": [1, -2, 1.5, true, false, null],
    "empty": {"o": {}, "a": []},
    "nested": [[1, [2]], {"a": {"b": [{"c": 1, "d": [1]}]}}],
    "odd key: x": {"1": "y"}
  })");
  const std::string text = toYaml(value);
  INFO(text);
  declarative::YamlParse back = declarative::parseYaml(text);
  REQUIRE(back.ok);
  CHECK(back.value == value);
  CHECK(text.find("- ~/pets/(?<id>[^/]+)$\n") != std::string::npos);
  CHECK(text.rfind("_format_version: \"3.0\"\n", 0) == 0);
  CHECK(toYaml(Json("x")) == "x\n");
}

TEST_CASE("yaml writer: plain strings") {
  CHECK(isPlainYamlString("Swagger_Petstore"));
  CHECK(isPlainYamlString("~/status/\\d+"));
  CHECK_FALSE(isPlainYamlString("~"));
  CHECK_FALSE(isPlainYamlString("yes"));
  CHECK_FALSE(isPlainYamlString("3.0"));
  CHECK_FALSE(isPlainYamlString("-"));
  CHECK_FALSE(isPlainYamlString("#x"));
}

}  // namespace
}  // namespace portico::cli
