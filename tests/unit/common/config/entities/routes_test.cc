// The routes schema: one TEST_CASE per accepted or rejected route (protocols, paths, hosts,
// headers, snis, the grpc and stream subschemas, Kong's entity checks), its defaults and the
// proto the DP receives.
#include <catch2/catch.hpp>

#include "common/config/entities.h"
#include "common/config/regex.h"
#include "tests/unit/common/config/config_test_util.h"

namespace portico::config {
namespace {

using testing::violation;

std::string routeMessage(const char* json) { return testing::message("routes", json); }

FieldErrors route(const char* json, Json* out, v1::Route* proto = nullptr) {
  return testing::process("routes", Json::parse(json), out, proto);
}

TEST_CASE("route: methods only is valid for http") {
  CHECK(routeMessage(R"({"protocols":["http"],"methods":["GET"]})") == "ok");
}

TEST_CASE("route: default protocols need a matching field") {
  CHECK(routeMessage(R"({})") ==
        "schema violation (must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when "
        "'protocols' is 'https')");
}

TEST_CASE("route: http only needs a matching field") {
  CHECK(routeMessage(R"({"protocols":["http"]})") ==
        "schema violation (must set one of 'methods', 'hosts', 'headers', 'paths' when "
        "'protocols' is 'http')");
}

TEST_CASE("route: mutually exclusive protocols") {
  CHECK(routeMessage(R"({"protocols":["http","tcp"]})") ==
        "schema violation (protocols: these sets are mutually exclusive: ('http', 'https'), "
        "('tcp', 'tls', 'udp'))");
}

TEST_CASE("route: empty protocols") {
  CHECK(routeMessage(R"({"protocols":[],"paths":["/"]})") ==
        "schema violation (protocols: length must be at least 1)");
}

TEST_CASE("route: unknown protocol") {
  CHECK(routeMessage(R"({"protocols":["ws"],"paths":["/"]})") ==
        "schema violation (protocols.1: expected one of: grpc, grpcs, http, https, tcp, tls, "
        "tls_passthrough, udp)");
}

TEST_CASE("route: empty path") {
  CHECK(routeMessage(R"({"protocols":["http"],"paths":[""]})") ==
        "schema violation (paths.1: length must be at least 1)");
}

TEST_CASE("route: path must start with / or ~/") {
  CHECK(routeMessage(R"({"paths":["/ok","foo"]})") ==
        "schema violation (paths.2: should start with: / (fixed path) or ~/ (regex path))");
}

TEST_CASE("route: path empty segments") {
  CHECK(routeMessage(R"({"paths":["/a//b"]})") ==
        "schema violation (paths.1: must not have empty segments)");
}

TEST_CASE("route: invalid regex path") {
  const std::string msg = routeMessage(R"({"protocols":["http"],"paths":["~/users/(foo/profile"]})");
  CHECK(msg.rfind("schema violation (paths.1: invalid regex: '/users/(foo/profile' (PCRE "
                  "returned: ", 0) == 0);
}

TEST_CASE("route: valid regex path") {
  CHECK(routeMessage(R"({"paths":["~/users/(?P<id>\\d+)$"]})") == "ok");
}

TEST_CASE("route: Kong-style named groups are accepted, as the router translates them") {
  CHECK(routeMessage(R"({"paths":["~/users/(?<id>\\d+)/(?<tab>[a-z]+)$"]})") == "ok");
  // Lookbehinds keep their "(?<" and RE2 still rejects them.
  CHECK(routeMessage(R"j({"paths":["~/a(?<=b)"]})j").rfind(
            "schema violation (paths.1: invalid regex: '/a(?<=b)' (PCRE returned: ", 0) == 0);
  CHECK(portico::config::translateRouteRegex("/u/(?<id>\\d+)(?<!x)(?<=y)") ==
        "^/u/(?P<id>\\d+)(?<!x)(?<=y)");
}

TEST_CASE("route: tilde inside a prefix path") {
  CHECK(routeMessage(R"({"protocols":["http"],"paths":["/abcd~user~2"]})") == "ok");
}

TEST_CASE("route: non-normalized prefix path") {
  CHECK(routeMessage(R"({"paths":["/a/../b"]})") ==
        "schema violation (paths.1: non-normalized path, consider use '/b' instead)");
  CHECK(routeMessage(R"({"paths":["/%7Euser"]})") ==
        "schema violation (paths.1: non-normalized path, consider use '/~user' instead)");
  CHECK(routeMessage(R"({"paths":["/caf%C3%A9"]})") == "ok");
}

TEST_CASE("route: bad percent-encoding in path") {
  CHECK(routeMessage(R"({"paths":["/a%zz"]})") ==
        "schema violation (paths.1: invalid url-encoded value: '%zz')");
}

TEST_CASE("route: empty host") {
  CHECK(routeMessage(R"({"protocols":["http"],"hosts":[""]})") ==
        "schema violation (hosts.1: length must be at least 1)");
}

TEST_CASE("route: wildcard hosts") {
  CHECK(routeMessage(R"({"hosts":["*.example.com","example.*","a.test:8080"]})") == "ok");
  CHECK(routeMessage(R"({"protocols":["http"],"hosts":["*example.com"]})") ==
        "schema violation (hosts.1: invalid wildcard: must be placed at leftmost or rightmost "
        "label)");
  CHECK(routeMessage(R"({"hosts":["a.*.com"]})") ==
        "schema violation (hosts.1: invalid wildcard: must be placed at leftmost or rightmost "
        "label)");
  CHECK(routeMessage(R"({"hosts":["*.example.*"]})") ==
        "schema violation (hosts.1: invalid wildcard: must have at most one wildcard)");
}

TEST_CASE("route: invalid hostname and port") {
  CHECK(routeMessage(R"({"hosts":["a b"]})") == "schema violation (hosts.1: invalid hostname: a b)");
  CHECK(routeMessage(R"({"hosts":["a.test:99999"]})") ==
        "schema violation (hosts.1: invalid port number)");
}

TEST_CASE("route: host header is forbidden") {
  CHECK(routeMessage(R"({"protocols":["http"],"headers":{"Host":["example.com"]}})") ==
        "schema violation (headers: cannot contain 'host' header, which must be specified in "
        "the 'hosts' attribute)");
}

TEST_CASE("route: header name characters") {
  CHECK(routeMessage(R"({"headers":{"x y":["a"]}})") ==
        "schema violation (headers: bad header name 'x y', allowed characters are A-Z, a-z, 0-9, "
        "'_', and '-')");
  CHECK(routeMessage(R"({"headers":{"X-Version":["v1","~*v2"]}})") == "ok");
}

TEST_CASE("route: methods must be upper-case") {
  CHECK(routeMessage(R"({"protocols":["http"],"methods":["HELLO WORLD"]})") ==
        "schema violation (methods.1: invalid value: HELLO WORLD)");
  CHECK(routeMessage(R"({"methods":["get"]})") == "schema violation (methods.1: invalid value: get)");
  CHECK(routeMessage(R"({"methods":["CUSTOM"]})") == "ok");
}

TEST_CASE("route: name with tildes") {
  CHECK(routeMessage(R"({"protocols":["http"],"paths":["/"],"name":"~3..x4~.M-p~1__3_"})") ==
        "ok");
}

TEST_CASE("route: snis only for tls-capable protocols") {
  CHECK(routeMessage(R"({"protocols":["tcp","udp"],"snis":["example.org"]})") ==
        "2 schema violations ('snis' can only be set when 'protocols' is 'grpcs', 'https', "
        "'tls' or 'tls_passthrough'; snis: length must be 0)");
}

TEST_CASE("route: grpc forbids strip_path") {
  CHECK(routeMessage(R"({"protocols":["grpc","grpcs"],"paths":["/"],"strip_path":true})") ==
        "schema violation (strip_path: cannot set 'strip_path' when 'protocols' is 'grpc' or "
        "'grpcs')");
  CHECK(routeMessage(R"({"protocols":["grpc"],"paths":["/"]})") == "ok");
}

TEST_CASE("route: grpc forbids methods") {
  CHECK(routeMessage(R"({"protocols":["grpc"],"methods":["GET"],"paths":["/"]})") ==
        "schema violation (methods: cannot set 'methods' when 'protocols' is 'grpc' or "
        "'grpcs')");
}

TEST_CASE("route: stream forbids paths") {
  CHECK(routeMessage(R"({"protocols":["tls"],"paths":["/"],"snis":["a.test"]})") ==
        "schema violation (paths: cannot set 'paths' when 'protocols' is 'tcp', 'tls', "
        "'tls_passthrough' or 'udp')");
}

TEST_CASE("route: https_redirect_status_code enum") {
  CHECK(routeMessage(R"({"paths":["/"],"https_redirect_status_code":400})") ==
        "schema violation (https_redirect_status_code: expected one of: 426, 301, 302, 307, "
        "308)");
}

TEST_CASE("route: path_handling enum") {
  CHECK(routeMessage(R"({"paths":["/"],"path_handling":"v2"})") ==
        "schema violation (path_handling: expected one of: v0, v1)");
}

TEST_CASE("route: sni must not be an IP") {
  CHECK(routeMessage(R"({"protocols":["https"],"snis":["10.0.0.1"]})") ==
        "schema violation (snis.1: must not be an IP)");
}

TEST_CASE("route: expected an array / a set / a string") {
  CHECK(routeMessage(R"j({"paths":"/"})j") == "schema violation (paths: expected an array)");
  CHECK(routeMessage(R"j({"paths":["/"],"methods":"GET"})j") ==
        "schema violation (methods: expected a set)");
  CHECK(routeMessage(R"j({"paths":[1]})j") == "schema violation (paths.1: expected a string)");
}

TEST_CASE("route: array errors positioned by element") {
  Json j;
  const FieldErrors errors = route(R"j({"paths":["/ok","bad"]})j", &j);
  CHECK(fieldsObject(errors) ==
        Json::parse(R"j({"paths":[null,"should start with: / (fixed path) or ~/ (regex path)"]})j"));
}

TEST_CASE("route: defaults") {
  Json j;
  REQUIRE(route(R"j({"paths":["/"]})j", &j).empty());
  CHECK(j["protocols"] == Json::parse(R"j(["http","https"])j"));
  CHECK(j["strip_path"] == true);
  CHECK(j["preserve_host"] == false);
  CHECK(j["request_buffering"] == true);
  CHECK(j["response_buffering"] == true);
  CHECK(j["regex_priority"] == 0);
  CHECK(j["path_handling"] == "v0");
  CHECK(j["https_redirect_status_code"] == 426);
  for (const char* null_field :
       {"name", "methods", "hosts", "headers", "snis", "sources", "destinations", "tags",
        "service"}) {
    INFO(null_field);
    CHECK(j[null_field].is_null());
  }
}

TEST_CASE("route: service reference") {
  Json j;
  v1::Route r;
  CHECK(routeMessage(R"j({"paths":["/"],"service":{"name":"svc"}})j") ==
        "schema violation (service.id: missing primary key)");
  REQUIRE(route(R"j({"paths":["/"],"service":{"id":"6b1c2a5e-6d7e-4c5e-8a1b-0f0e0d0c0b0a"}})j",
                &j, &r)
              .empty());
  CHECK(r.service_id() == "6b1c2a5e-6d7e-4c5e-8a1b-0f0e0d0c0b0a");
  CHECK(protoToJson(r)["service"] ==
        Json::parse(R"j({"id":"6b1c2a5e-6d7e-4c5e-8a1b-0f0e0d0c0b0a"})j"));
  const FieldErrors errors = route(R"j({"methods":["GET"],"service":{"protocol":"http"}})j", &j);
  CHECK(violation(errors) == "schema violation (service.id: missing primary key)");
  CHECK(fieldsObject(errors) == Json::parse(R"j({"service":{"id":"missing primary key"}})j"));
  CHECK(routeMessage(R"j({"methods":["GET"],"service":{"id":"x"}})j") ==
        "schema violation (service.id: expected a valid UUID)");
}

TEST_CASE("route: grpc routes default strip_path to false") {
  Json j;
  v1::Route r;
  REQUIRE(route(R"j({"protocols":["grpc"],"paths":["/"]})j", &j, &r).empty());
  CHECK_FALSE(r.strip_path());
}

TEST_CASE("route: header values as a string or a list, errors by header name") {
  Json j;
  v1::Route r;
  REQUIRE(route(R"j({"headers":{"x-a":"1","x-b":["2","3"]}})j", &j, &r).empty());
  CHECK(j["headers"] == Json::parse(R"j({"x-a":["1"],"x-b":["2","3"]})j"));
  REQUIRE(r.headers_size() == 2);
  CHECK(r.headers(1).values_size() == 2);
  CHECK(routeMessage(R"j({"headers":{"x-a":["1",""]}})j") ==
        "schema violation (headers.x-a.2: length must be at least 1)");
}

TEST_CASE("route: sources and destinations are not modelled") {
  CHECK(routeMessage(R"j({"paths":["/"],"sources":[{"ip":"10.0.0.1"}]})j") ==
        "schema violation (sources: cannot set 'sources' when 'protocols' is 'http' or 'https')");
  CHECK(routeMessage(R"j({"protocols":["tcp"],"snis":["a.test"],"destinations":[{"port":1}]})j") ==
        "3 schema violations ('snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' "
        "or 'tls_passthrough'; destinations: not supported yet; snis: length must be 0)");
}

TEST_CASE("route: round trip through the proto") {
  Json j;
  v1::Route r;
  REQUIRE(route(R"j({"name":"r1","protocols":["https"],"methods":["GET","POST"],
      "hosts":["a.test"],"paths":["/x"],"headers":{"x-v":["1"]},"snis":["a.test"],
      "tags":["t1"],"regex_priority":3,"strip_path":false})j",
                &j, &r)
              .empty());
  r.set_id("6b1c2a5e-6d7e-4c5e-8a1b-0f0e0d0c0b0a");
  Json again;
  v1::Route r2;
  REQUIRE(testing::process("routes", protoToJson(r), &again, &r2).empty());
  CHECK(r2.SerializeAsString() == r.SerializeAsString());
}

}  // namespace
}  // namespace portico::config
