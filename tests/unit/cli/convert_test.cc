// cli/convert: decK's 2.x -> 3.x conversion (regex-like route paths get '~', _format_version
// 3.0, the rest kept), and the decK fixture pair of ../shared/fixtures/declarative compared
// parsed.
#include "cli/convert.h"

#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/declarative/declarative.h"

namespace portico::cli {
namespace {

using Json = nlohmann::json;

TEST_CASE("convert: decK's regex-like paths") {
  CHECK_FALSE(isRegexLikePath("/status/200"));
  CHECK_FALSE(isRegexLikePath("/a-b_c.d~e/%20"));
  CHECK(isRegexLikePath("/status/\\d+"));
  CHECK(isRegexLikePath("/users/(?<id>[0-9]+)$"));
  CHECK(isRegexLikePath("/a b"));
}

TEST_CASE("convert: 2.x file to 3.x") {
  absl::StatusOr<Document> in = parseDocument("in.yaml", R"(_format_version: "2.1"
_comment: kept
services:
- name: s
  url: http://x.test
  routes:
  - name: r1
    paths: [/plain, /status/\d+, ~/already/\d+]
  - id: 0b5d5c5a-4e7b-4b0c-8a39-0d3b8a7c2f11
    paths: ["/v(1|2)/x"]
  - name: r3
    hosts: [a.test]
routes:
- name: top
  service: s
  paths: [/top/.*]
)");
  REQUIRE(in.ok());
  ConvertReport report;
  absl::StatusOr<Json> out = convertKong2xTo3x(*in, &report);
  REQUIRE(out.ok());
  CHECK((*out)["_format_version"] == "3.0");
  CHECK((*out)["_comment"] == "kept");
  const Json& routes = (*out)["services"][0]["routes"];
  CHECK(routes[0]["paths"] == Json{"/plain", "~/status/\\d+", "~/already/\\d+"});
  CHECK(routes[1]["paths"] == Json{"~/v(1|2)/x"});
  CHECK_FALSE(routes[2].contains("paths"));
  CHECK((*out)["routes"][0]["paths"] == Json{"~/top/.*"});
  CHECK(report.old_format_version == "2.1");
  CHECK(report.changed_routes ==
        std::vector<std::string>{"r1", "0b5d5c5a-4e7b-4b0c-8a39-0d3b8a7c2f11", "top"});
  declarative::LoadResult r = declarative::loadDeclarative(out->dump());
  INFO(r.describe("converted"));
  CHECK(r.ok());

  absl::StatusOr<Document> bad = parseDocument("bad.yaml", "_format_version: '1.1'\nservices: 3\n");
  REQUIRE(bad.ok());
  absl::StatusOr<Json> failed = convertKong2xTo3x(*bad, &report);
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.status().message() == "bad.yaml:2: /services: expected a list of services");
}

TEST_CASE("convert: decK's 2.8 fixture gives its 3.4 expected file") {
  const char* src = std::getenv("PORTICO_SOURCE_DIR");
  const std::string dir =
      std::string(src != nullptr ? src : ".") + "/../shared/fixtures/declarative/";
  struct stat st;
  if (::stat((dir + "deck-convert-28x-routes.yaml").c_str(), &st) != 0) {
    WARN("skipped: " << dir << " has no deck-convert fixtures");
    return;
  }
  absl::StatusOr<Document> in = readDocument(dir + "deck-convert-28x-routes.yaml");
  absl::StatusOr<Document> expected = readDocument(dir + "deck-convert-34x-expected-routes.yaml");
  REQUIRE(in.ok());
  REQUIRE(expected.ok());
  ConvertReport report;
  absl::StatusOr<Json> out = convertKong2xTo3x(*in, &report);
  REQUIRE(out.ok());
  CHECK(*out == expected->value);
  CHECK(report.changed_routes == std::vector<std::string>{"r1"});
}

}  // namespace
}  // namespace portico::cli
