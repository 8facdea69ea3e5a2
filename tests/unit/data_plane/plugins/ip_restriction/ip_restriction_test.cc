// ip-restriction: the CIDR matcher (IPv4 and IPv6), schema messages, and the proxy.
#include <catch2/catch.hpp>

#include "data_plane/plugins/ip_restriction/cidr.h"
#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::PluginFixture;
using testing::WireResponse;
using namespace plugins::ip_restriction;

bool in(const std::string& cidr, const std::string& addr) {
  auto c = parseCidr(cidr);
  auto a = parseAddress(addr);
  REQUIRE(c.has_value());
  REQUIRE(a.has_value());
  return contains(*c, *a);
}

TEST_CASE("ip-restriction: CIDR matching, IPv4 and IPv6") {
  CHECK(in("127.0.0.1", "127.0.0.1"));
  CHECK(!in("127.0.0.1", "127.0.0.2"));
  CHECK(in("10.0.0.0/8", "10.255.1.2"));
  CHECK(!in("10.0.0.0/8", "11.0.0.1"));
  CHECK(in("0.0.0.0/0", "8.8.8.8"));
  CHECK(in("192.168.1.0/25", "192.168.1.127"));
  CHECK(!in("192.168.1.0/25", "192.168.1.128"));
  CHECK(in("2001:db8::/32", "2001:db8:1::5"));
  CHECK(!in("2001:db8::/32", "2001:db9::1"));
  CHECK(in("::1", "::1"));
  CHECK(!in("::/0", "10.0.0.1"));            // families never mix
  CHECK(in("10.0.0.0/8", "::ffff:10.1.2.3"));  // IPv4-mapped matches IPv4 ranges
  CHECK(!parseCidr("0.0.0.0/33").has_value());
  CHECK(!parseCidr("hello").has_value());
  CHECK(!parseCidr("::/129").has_value());
  CHECK(!parseCidr("1.2.3.4/").has_value());
}

TEST_CASE("ip-restriction schema") {
  CHECK(testing::pluginSchemaError({{"name", "ip-restriction"}}) ==
        "@entity: at least one of these fields must be non-empty: 'config.allow', "
        "'config.deny'");
  CHECK(testing::pluginSchemaError({{"name", "ip-restriction"},
                                    {"config", {{"allow", {"hello"}}}}}) ==
        "config.allow.1: invalid ip or cidr range: 'hello'");
  CHECK(testing::pluginSchemaError({{"name", "ip-restriction"},
                                    {"config", {{"deny", {"1.1.1.1", "0.0.0.0/33"}}}}}) ==
        "config.deny.2: invalid ip or cidr range: '0.0.0.0/33'");
  CHECK(testing::pluginDefaults({{"name", "ip-restriction"}, {"config", {{"deny", {"::1"}}}}})
            ["protocols"] == Json::array({"http", "https", "tcp", "tls", "grpc", "grpcs"}));
}

WireResponse fromLoopback(const Json& config) {
  PluginFixture f;
  f.add("plugins", {{"name", "ip-restriction"}, {"config", config}});
  REQUIRE(f.apply().ToString() == "OK");
  return f.get("/x");
}

TEST_CASE("ip-restriction: deny first, then allow; status and message") {
  CHECK(fromLoopback({{"allow", {"127.0.0.0/8"}}}).status == 200);
  WireResponse r = fromLoopback({{"allow", {"10.0.0.0/8"}}});
  CHECK(r.status == 403);
  CHECK(r.body == R"({"message":"IP address not allowed: 127.0.0.1"})");
  r = fromLoopback({{"allow", {"127.0.0.1"}}, {"deny", {"127.0.0.0/24"}}});
  CHECK(r.status == 403);
  r = fromLoopback({{"deny", {"127.0.0.1"}}, {"status", 401}, {"message", "go away"}});
  CHECK(r.status == 401);
  CHECK(r.body == R"({"message":"go away"})");
  CHECK(fromLoopback({{"deny", {"10.0.0.1", "::1"}}}).status == 200);
}

}  // namespace
}  // namespace portico::dp
