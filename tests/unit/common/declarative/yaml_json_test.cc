// YAML/JSON to JSON with line numbers and limits (common/declarative/yaml_json.h).
#include <catch2/catch.hpp>

#include "common/declarative/yaml_json.h"

namespace portico::declarative {
namespace {

TEST_CASE("yaml: plain scalars resolve as YAML 1.2 core, quoted ones stay strings") {
  YamlParse p = parseYaml(
      "a: 1\nb: '1'\nc: 1.5\nd: true\ne: \"true\"\nf: ~\ng: null\nh:\ni: 0x1F\nj: 1e3\n"
      "k: yes\nl: 1.1\nm: .inf\nn: 99999999999999999999\n");
  REQUIRE(p.ok);
  CHECK(p.value["a"] == 1);
  CHECK(p.value["b"] == "1");
  CHECK(p.value["c"] == 1.5);
  CHECK(p.value["d"] == true);
  CHECK(p.value["e"] == "true");
  CHECK(p.value["f"].is_null());
  CHECK(p.value["g"].is_null());
  CHECK(p.value["h"].is_null());
  CHECK(p.value["i"] == 31);
  CHECK(p.value["j"] == 1000.0);
  CHECK(p.value["k"] == "yes");
  CHECK(p.value["l"].is_number_float());
  CHECK(p.value["m"] == ".inf");
  CHECK(p.value["n"].is_number_float());
}

TEST_CASE("yaml: JSON input parses the same") {
  YamlParse p = parseYaml(R"({"a": [1, "x", {"b": null}], "c": "\u00e9\/"})");
  REQUIRE(p.ok);
  CHECK(p.value == nlohmann::json::parse(R"({"a": [1, "x", {"b": null}], "c": "\u00e9/"})"));
}

TEST_CASE("yaml: lines of keys and items") {
  YamlParse p = parseYaml("services:\n- name: a\n  routes:\n  - paths:\n    - /x\n");
  REQUIRE(p.ok);
  CHECK(lineOf(p.lines, "/services/0") == 2);
  CHECK(lineOf(p.lines, "/services/0/routes/0/paths/0") == 5);
  CHECK(lineOf(p.lines, "/services/0/routes/0/nothere/3") == 4);
  CHECK(lineOf(p.lines, "/a~1b") == 1);  // the root
}

TEST_CASE("yaml: anchors, aliases and merge keys") {
  YamlParse p = parseYaml("base: &b {x: 1, y: 2}\nuse: *b\nmerged:\n  <<: *b\n  y: 3\n");
  REQUIRE(p.ok);
  CHECK(p.value["use"] == nlohmann::json({{"x", 1}, {"y", 2}}));
  CHECK(p.value["merged"] == nlohmann::json({{"x", 1}, {"y", 3}}));
}

TEST_CASE("yaml: a billion-laughs file is refused while expanding") {
  std::string text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 9; ++i) {
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) {
      text += (k ? ", *a" : "*a") + std::to_string(i - 1);
    }
    text += "]\n";
  }
  YamlParse p = parseYaml(text);
  REQUIRE_FALSE(p.ok);
  CHECK(p.error.find("expands to more than 4000000 values") != std::string::npos);
}

TEST_CASE("yaml: with an alias ratio, a small bomb stops early and shared anchors still load") {
  YamlLimits limits;
  limits.max_alias_ratio = 10;
  std::string bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 9; ++i) {
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) {
      bomb += (k ? ", *a" : "*a") + std::to_string(i - 1);
    }
    bomb += "]\n";
  }
  YamlParse p = parseYaml(bomb, limits);
  REQUIRE_FALSE(p.ok);
  CHECK(p.error.find("more than 10 times") != std::string::npos);
  CHECK(p.error.find("values (aliases included)") != std::string::npos);

  // decK-style sharing: one 21-value plugin config aliased by 2,000 routes (42,000 values
  // from aliases, ~8,000 of the text's own) is well within the ratio.
  std::string shared = "conf: &c {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}\n"
                       "routes:\n";
  for (int i = 0; i < 2000; ++i) {
    shared += "- {name: r" + std::to_string(i) + ", paths: [/r" + std::to_string(i) +
              "], config: *c}\n";
  }
  YamlParse ok = parseYaml(shared, limits);
  REQUIRE(ok.ok);
  CHECK(ok.value["routes"][1999]["config"]["j"] == 10);
}

TEST_CASE("yaml: nesting past the limit is refused, also far past it") {
  YamlParse p = parseYaml(std::string(65, '[') + std::string(65, ']'));
  REQUIRE_FALSE(p.ok);
  CHECK(p.error == "line 1, column 65: nesting deeper than 64 levels");
  YamlParse deep = parseYaml(std::string(200000, '['));
  CHECK_FALSE(deep.ok);
}

TEST_CASE("yaml: syntax errors, duplicate keys, several documents and odd keys name the line") {
  YamlParse bad = parseYaml("a: 1\nb: [1, 2\n");
  REQUIRE_FALSE(bad.ok);
  CHECK(bad.error_line >= 2);
  YamlParse dup = parseYaml("a: 1\nb: 2\na: 3\n");
  REQUIRE_FALSE(dup.ok);
  CHECK(dup.error == "line 3, column 1: duplicate key 'a'");
  YamlParse docs = parseYaml("a: 1\n---\nb: 2\n");
  CHECK_FALSE(docs.ok);
  YamlParse key = parseYaml("? [1, 2]\n: x\n");
  CHECK_FALSE(key.ok);
  YamlParse tag = parseYaml("a: !!binary aGVsbG8=\n");
  CHECK_FALSE(tag.ok);
  YamlParse empty = parseYaml("");
  CHECK_FALSE(empty.ok);
}

}  // namespace
}  // namespace portico::declarative
