// Path normalization and the v0 upstream path join (Kong's strip_path/path_handling table).
#include "data_plane/router/path.h"

#include <catch2/catch.hpp>

namespace portico::dp::router {
namespace {

std::string norm(std::string_view raw) {
  std::string out;
  REQUIRE(normalizePath(raw, &out));
  return out;
}

std::string join(std::string_view base, std::string_view path, size_t strip) {
  std::string out;
  appendUpstreamPath(base, path, strip, &out);
  return out;
}

TEST_CASE("path: normalization") {
  CHECK(norm("/") == "/");
  CHECK(norm("/a/b") == "/a/b");
  CHECK(norm("/h%65llo") == "/hello");
  CHECK(norm("/a%20b") == "/a b");
  CHECK(norm("/a%2fb") == "/a%2Fb");
  CHECK(norm("/foo/a/../bar") == "/foo/bar");
  CHECK(norm("/foo//bar") == "/foo/bar");
  CHECK(norm("/foo/./bar") == "/foo/bar");
  CHECK(norm("/foo/bar/.") == "/foo/bar/");
  CHECK(norm("/foo/bar/..") == "/foo/");
  CHECK(norm("/../..") == "/");
  CHECK(norm("/anything/./a/../wor%6cd/a/../b") == "/anything/world/b");
  CHECK(norm("/%2e%2e/x") == "/x");
  std::string out;
  CHECK_FALSE(normalizePath("/bad%2G", &out));
  CHECK_FALSE(normalizePath("/bad%", &out));
  CHECK_FALSE(normalizePath("/\xff\xfe", &out));
  CHECK(normalizePath("/caf\xc3\xa9", &out));
}

TEST_CASE("path: v0 join") {
  CHECK(join("/srv", "/roureq", 0) == "/srv/roureq");
  CHECK(join("/srv", "/roureq", 4) == "/srv/req");
  CHECK(join("/srv/", "/rou", 4) == "/srv");
  CHECK(join("/service", "/route", 0) == "/service/route");
  CHECK(join("/service", "/route", 6) == "/service");
  CHECK(join("/service", "/route/", 6) == "/service/");
  CHECK(join("/service/", "/route", 6) == "/service");
  CHECK(join("/service", "/", 0) == "/service");
  CHECK(join("/", "/my-route/hello", 0) == "/my-route/hello");
  CHECK(join("/", "/hello/world", 6) == "/world");
  CHECK(join("/", "/hello", 6) == "/");
  CHECK(join("/basic-auth/", "/private/passwd", 0) == "/basic-auth/private/passwd");
  CHECK(join("/", "/cat and dog", 0) == "/cat%20and%20dog");
}

}  // namespace
}  // namespace portico::dp::router
