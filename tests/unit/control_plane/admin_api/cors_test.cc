// CorsOrigins: --admin_gui_url parsing (origins only, paths dropped, bad URLs refused) and
// the Access-Control-Allow-Origin Kong's cors_filter would answer.
#include <catch2/catch.hpp>

#include "control_plane/admin_api/cors.h"

namespace portico::cp {
namespace {

TEST_CASE("cors: without admin_gui_url every origin is allowed") {
  const CorsOrigins any = CorsOrigins::parse("").value();
  CHECK(any.origins().empty());
  CHECK(any.allowOrigin("http://example.com") == "http://example.com");
  CHECK(any.allowOrigin("") == "*");
  CHECK(CorsOrigins().allowOrigin("") == "*");
}

TEST_CASE("cors: admin_gui_url origins; others get the first one") {
  const CorsOrigins gui =
      CorsOrigins::parse("http://admin.api:9100/path/to/any/way, HTTPS://Console.Example").value();
  CHECK(gui.origins() ==
        std::vector<std::string>{"http://admin.api:9100", "https://console.example"});
  CHECK(gui.allowOrigin("https://console.example") == "https://console.example");
  CHECK(gui.allowOrigin("http://admin.api:9100") == "http://admin.api:9100");
  CHECK(gui.allowOrigin("http://example.com") == "http://admin.api:9100");
  CHECK(gui.allowOrigin("") == "http://admin.api:9100");
}

TEST_CASE("cors: admin_gui_url entries must be http(s)://host") {
  for (const char* bad : {"admin.api:9100", "ftp://admin.api", "http://", "https:///path"}) {
    INFO(bad);
    const auto parsed = CorsOrigins::parse(bad);
    REQUIRE(!parsed.ok());
    CHECK(parsed.status().message() == "--admin_gui_url: '" + std::string(bad) +
                                           "' is not an http(s)://host[:port] URL");
  }
}

}  // namespace
}  // namespace portico::cp
