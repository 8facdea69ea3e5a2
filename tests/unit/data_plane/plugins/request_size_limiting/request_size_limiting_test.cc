// request-size-limiting: schema, Content-Length and chunked bodies through the real proxy.
#include <catch2/catch.hpp>

#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::PluginFixture;
using testing::WireResponse;

struct SizeFixture : PluginFixture {
  explicit SizeFixture(Json config) {
    add("plugins", {{"name", "request-size-limiting"}, {"config", config}});
    REQUIRE(apply().ToString() == "OK");
  }
  WireResponse post(size_t n, const std::string& extra = "") {
    return send("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(n) +
                "\r\n" + extra + "\r\n" + std::string(n, 'a'));
  }
  WireResponse chunked(size_t n) {
    std::string body;
    for (size_t left = n; left > 0;) {
      const size_t c = std::min<size_t>(left, 100);
      char hex[16];
      std::snprintf(hex, sizeof(hex), "%zx", c);
      body += std::string(hex) + "\r\n" + std::string(c, 'b') + "\r\n";
      left -= c;
    }
    body += "0\r\n\r\n";
    return send("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + body);
  }
};

TEST_CASE("request-size-limiting schema") {
  Json d = testing::pluginDefaults({{"name", "request-size-limiting"}});
  CHECK(d["config"] == Json({{"allowed_payload_size", 128}, {"size_unit", "megabytes"},
                             {"require_content_length", false}}));
  CHECK(testing::pluginSchemaError({{"name", "request-size-limiting"},
                                    {"config", {{"size_unit", "gigabytes"}}}}) ==
        "config.size_unit: expected one of: megabytes, kilobytes, bytes");
}

TEST_CASE("request-size-limiting: Content-Length over the limit is refused before forwarding") {
  SizeFixture f(Json{{"allowed_payload_size", 10}, {"size_unit", "bytes"}});
  CHECK(f.post(10).status == 200);  // equal is allowed
  WireResponse r = f.post(11);
  CHECK(r.status == 413);
  CHECK(r.body == R"({"message":"Request size limit exceeded"})");
  SizeFixture k(Json{{"allowed_payload_size", 1}, {"size_unit", "kilobytes"}});
  CHECK(k.post(1024).status == 200);
  CHECK(k.post(1025).status == 413);
}

TEST_CASE("request-size-limiting: chunked bodies are measured as they stream") {
  SizeFixture f(Json{{"allowed_payload_size", 1000}, {"size_unit", "bytes"}});
  CHECK(f.chunked(1000).status == 200);
  WireResponse r = f.chunked(5000);
  CHECK(r.status == 413);
  CHECK(r.body == R"({"message":"Request size limit exceeded"})");
}

TEST_CASE("request-size-limiting: require_content_length") {
  SizeFixture f(Json{{"require_content_length", true}});
  WireResponse r = f.send("POST /x HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(r.status == 411);
  CHECK(r.body == R"({"message":"A valid Content-Length header is required"})");
  CHECK(f.post(5).status == 200);
}

}  // namespace
}  // namespace portico::dp
