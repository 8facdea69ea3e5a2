// porticoctl run as a process: `validate` on good, bad and fixture files (exit 0 / 1, the
// error's line), stdin, --json, and the command-line errors.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

namespace portico::testing {
namespace {

struct Run {
  int status;
  std::string output;  // stdout and stderr
};

Run porticoctl(const std::string& args, const std::string& stdin_text = "") {
  const std::string in = "/tmp/porticoctl-test-in-" + std::to_string(::getpid());
  std::ofstream(in) << stdin_text;
  const std::string cmd = binaryPath("porticoctl") + " " + args + " < " + in + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) {
    out.append(buf, n);
  }
  const int status = ::pclose(p);
  ::unlink(in.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string writeFile(const std::string& name, const std::string& text) {
  const std::string path = "/tmp/porticoctl-test-" + std::to_string(::getpid()) + "-" + name;
  std::ofstream(path) << text;
  return path;
}

TEST_CASE("porticoctl validate: a valid file exits 0 with a summary") {
  const std::string path = writeFile("good.yml", R"(_format_version: "3.0"
services:
- name: s
  url: http://example.test
  routes:
  - name: r
    paths: [/]
)");
  Run r = porticoctl("validate -s " + path);
  CHECK(r.status == 0);
  CHECK(r.output == path + ": valid (_format_version 3.0; 1 services, 1 routes)\n");
  CHECK(porticoctl("validate --quiet --state=" + path).output.empty());
  ::unlink(path.c_str());
}

TEST_CASE("porticoctl validate: an invalid file exits 1 naming the line") {
  const std::string path = writeFile("bad.yml", R"(_format_version: "3.0"
services:
- name: s
  host: example.test
  port: 99999
)");
  Run r = porticoctl("validate -s " + path);
  CHECK(r.status == 1);
  CHECK(r.output.find(path + ":5: services/0 port: value should be between 0 and 65535") !=
        std::string::npos);
  Run json = porticoctl("validate --json -s " + path);
  CHECK(json.status == 1);
  nlohmann::json body = nlohmann::json::parse(json.output, nullptr, false);
  REQUIRE(body.is_object());
  CHECK(body["code"] == 14);
  CHECK(body["flattened_errors"][0]["errors"][0]["line"] == 5);
  ::unlink(path.c_str());
}

TEST_CASE("porticoctl validate: stdin, several files, and command-line errors") {
  Run in = porticoctl("validate -s -", "_format_version: \"2.1\"\nroutes: []\n");
  CHECK(in.status == 0);
  CHECK(in.output == "<stdin>: valid (_format_version 2.1; no entities)\n");
  CHECK(porticoctl("validate -s -", "_format_version: 3\n").status == 1);
  CHECK(porticoctl("validate -s /nonexistent.yml").output.find("cannot read /nonexistent.yml") !=
        std::string::npos);
  CHECK(porticoctl("validate").status == 1);
  CHECK(porticoctl("validate -s").status == 1);
  CHECK(porticoctl("validate --bogus").status == 1);
  CHECK(porticoctl("frobnicate").status == 1);
  CHECK(porticoctl("sync").output == "porticoctl: give the desired state with -s/--state FILE\n");
  CHECK(porticoctl("--help").status == 0);
  CHECK(porticoctl("version").output.rfind("porticoctl ", 0) == 0);
}

TEST_CASE("porticoctl validate: the fixture files") {
  const std::string dir = sourceDir() + "/../shared/fixtures/declarative/";
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    WARN("skipped: " << dir << " is absent");
    return;
  }
  Run burst = porticoctl("validate -s " + dir + "kong-spec-fixtures-burst.yml -s " + dir +
                         "deck-dump-001-entities-with-tags.yaml");
  INFO(burst.output);
  CHECK(burst.status == 0);
  CHECK(burst.output.find("236 services, 286 routes") != std::string::npos);
  Run supabase = porticoctl("validate -s " + dir + "supabase-docker-kong.yml");
  CHECK(supabase.status == 1);
  CHECK(supabase.output.find(":193: services/9 protocol: expected one of: grpc, grpcs, http, "
                             "https, tcp, tls, tls_passthrough, udp") != std::string::npos);
}

}  // namespace
}  // namespace portico::testing
