// porticoctl's file commands run as a process: openapi2config on every spec of
// ../shared/fixtures/openapi (its output then passes `porticoctl validate`), convert on decK's
// fixture pair, and their command-line errors (exit 1, one line).
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/declarative/yaml_json.h"
#include "tests/support/test_support.h"

namespace portico::testing {
namespace {

struct Run {
  int status;
  std::string output;  // stdout and stderr
};

Run porticoctl(const std::string& args) {
  const std::string cmd = binaryPath("porticoctl") + " " + args + " < /dev/null 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) {
    out.append(buf, n);
  }
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string tmpPath(const std::string& name) {
  return "/tmp/porticoctl-files-" + std::to_string(::getpid()) + "-" + name;
}

nlohmann::json parseFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  declarative::YamlParse parsed = declarative::parseYaml(text.str());
  INFO(path << ": " << parsed.error);
  REQUIRE(parsed.ok);
  return parsed.value;
}

TEST_CASE("porticoctl openapi2config: every fixture spec, validated by porticoctl validate") {
  const std::string dir = sourceDir() + "/../shared/fixtures/openapi/";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    WARN("skipped: " << dir << " is absent");
    return;
  }
  int converted = 0;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (!name.ends_with(".yaml") && !name.ends_with(".json")) {
      continue;
    }
    for (const char* format : {"3.0", "1.1"}) {
      INFO(name << " --format " << format);
      const std::string out = tmpPath(std::string(format) + "-" + name);
      Run r = porticoctl("openapi2config " + dir + name + " -o " + out + " --format " + format);
      INFO(r.output);
      if (r.status != 0) {
        // openapi-2-kong's answer for a spec without servers.
        CHECK(r.status == 1);
        CHECK(r.output == "porticoctl openapi2config: " + dir + name + ":1: /: no servers " +
                              "defined in spec\n");
        continue;
      }
      CHECK(r.output.empty());
      Run v = porticoctl("validate -s " + out);
      INFO(v.output);
      CHECK(v.status == 0);
      CHECK(parseFile(out)["_format_version"] == format);
      ::unlink(out.c_str());
      ++converted;
    }
  }
  ::closedir(d);
  CHECK(converted >= 4);

  // JSON by the output's extension, and stdout.
  const std::string json = tmpPath("petstore.json");
  REQUIRE(porticoctl("openapi2config " + dir + "petstore.yaml -o " + json + " --select-tag t1")
              .status == 0);
  std::ifstream in(json);
  nlohmann::json config = nlohmann::json::parse(in, nullptr, false);
  REQUIRE(config.is_object());
  CHECK(config["services"][0]["tags"] ==
        nlohmann::json{"OAS3_import", "OAS3file_petstore.yaml", "t1"});
  ::unlink(json.c_str());
  Run out = porticoctl("openapi2config " + dir + "petstore.yaml -o -");
  CHECK(out.status == 0);
  CHECK(out.output.find("- ~/pets/(?<petId>[^/]+)$\n") != std::string::npos);
}

TEST_CASE("porticoctl openapi2config and convert: command-line errors") {
  CHECK(porticoctl("openapi2config").status == 1);
  CHECK(porticoctl("openapi2config spec.yaml").output.rfind(
            "porticoctl: openapi2config: give the output file with -o", 0) == 0);
  CHECK(porticoctl("openapi2config s.yaml -o x --format 2.1").status == 1);
  CHECK(porticoctl("openapi2config /nonexistent.yaml -o -").output ==
        "porticoctl openapi2config: cannot read /nonexistent.yaml\n");
  CHECK(porticoctl("convert --from kong-gateway-2.x --to konnect --input-file x").output.rfind(
            "porticoctl convert: cannot convert from 'kong-gateway-2.x' to 'konnect'", 0) == 0);
  CHECK(porticoctl("convert --bogus").status == 1);
  CHECK(porticoctl("convert --from kong-gateway-2.x --to kong-gateway-3.x").status == 1);
}

TEST_CASE("porticoctl convert: decK's 2.8 fixture gives its 3.4 expected file") {
  const std::string dir = sourceDir() + "/../shared/fixtures/declarative/";
  struct stat st;
  if (::stat((dir + "deck-convert-28x-routes.yaml").c_str(), &st) != 0) {
    WARN("skipped: " << dir << " has no deck-convert fixtures");
    return;
  }
  const std::string out = tmpPath("converted.yaml");
  Run r = porticoctl("convert --from kong-gateway-2.x --to kong-gateway-3.x --input-file " + dir +
                     "deck-convert-28x-routes.yaml --output-file " + out);
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("1 route(s) had regex paths") != std::string::npos);
  CHECK(r.output.find("_format_version '1.1' -> '3.0'") != std::string::npos);
  CHECK(parseFile(out) == parseFile(dir + "deck-convert-34x-expected-routes.yaml"));
  CHECK(porticoctl("validate -s " + out).status == 0);
  ::unlink(out.c_str());
}

}  // namespace
}  // namespace portico::testing
