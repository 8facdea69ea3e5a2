// Kong's typedefs: the reusable field rules and their messages.
#include <catch2/catch.hpp>

#include "common/config/typedefs.h"
#include "tests/unit/common/config/config_test_util.h"

namespace portico::config {
namespace {

TEST_CASE("normalizePath") {
  CHECK(normalizePath("/a/./b/../c/") == "/a/c/");
  CHECK(normalizePath("/%7e%2f") == "/~%2F");
  CHECK(normalizePath("/") == "/");
}

TEST_CASE("length caps: Kong's len_max message, checked before any message echoes the value") {
  const std::string long_name(256, 'n');
  CHECK(checkUtf8Name(std::string(255, 'n')).empty());
  CHECK(checkUtf8Name(long_name) == "length must be at most 255");
  CHECK(checkUtf8Name(long_name + " ") == "length must be at most 255");  // not "invalid value"
  CHECK(checkTag(std::string(255, 't')).empty());
  CHECK(checkTag(std::string(256, ',')) == "length must be at most 255");
  CHECK(checkHost(std::string(254, 'h')) == "length must be at most 253");
  CHECK(checkHost(std::string(253, 'h')).empty());
  CHECK(checkSni(std::string(254, 'h')) == "length must be at most 253");
  // Route hosts: the cap is on the name; a port may follow a 253-byte name.
  CHECK(checkWildcardHost(std::string(253, 'h') + ":8443").empty());
  CHECK(checkWildcardHost(std::string(254, 'h') + ":1") == "length must be at most 253");
  CHECK(checkWildcardHost(std::string(100000, 'h')) == "length must be at most 253");
  CHECK(checkServicePath("/" + std::string(4095, 'p')).empty());
  CHECK(checkServicePath("/" + std::string(4096, 'p')) == "length must be at most 4096");
  CHECK(checkRouterPath("~/" + std::string(5000, '(')) == "length must be at most 4096");
  CHECK(testing::message("services", ("{\"host\":\"a.test\",\"name\":\"" + long_name + "\"}").c_str()) ==
        "schema violation (name: length must be at most 255)");
}

}  // namespace
}  // namespace portico::config
