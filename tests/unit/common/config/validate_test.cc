// Semantic validation of services and routes: one TEST_CASE per accepted or rejected config,
// checking Kong's exact message (decoded through kong_json so inputs read like Admin API bodies).
#include <catch2/catch.hpp>

#include "common/config/kong_json.h"
#include "common/config/regex.h"
#include "common/config/validate.h"

namespace portico::config {
namespace {

std::string serviceMessage(const char* json) {
  v1::Service s;
  const FieldErrors errors = decodeService(Json::parse(json), &s);
  return errors.empty() ? "ok" : schemaViolationMessage(errors);
}

std::string routeMessage(const char* json) {
  v1::Route r;
  std::optional<std::string> name;
  const FieldErrors errors = decodeRoute(Json::parse(json), &r, &name);
  return errors.empty() ? "ok" : schemaViolationMessage(errors);
}

TEST_CASE("service: host only is valid") { CHECK(serviceMessage(R"({"host":"a.test"})") == "ok"); }

TEST_CASE("service: host is required") {
  CHECK(serviceMessage(R"({})") == "schema violation (host: required field missing)");
}

TEST_CASE("service: host must not have a port") {
  CHECK(serviceMessage(R"({"host":"example.com:80"})") ==
        "schema violation (host: must not have a port)");
}

TEST_CASE("service: host must not be a wildcard") {
  CHECK(serviceMessage(R"({"host":"*example.com"})") ==
        "schema violation (host: invalid value: *example.com)");
}

TEST_CASE("service: IPv4 and IPv6 hosts are valid") {
  CHECK(serviceMessage(R"({"host":"10.0.0.1"})") == "ok");
  CHECK(serviceMessage(R"({"host":"::1"})") == "ok");
}

TEST_CASE("service: port range") {
  CHECK(serviceMessage(R"({"host":"a.test","port":65536})") ==
        "schema violation (port: value should be between 0 and 65535)");
  CHECK(serviceMessage(R"({"host":"a.test","port":-1})") ==
        "schema violation (port: value should be between 0 and 65535)");
}

TEST_CASE("service: retries range") {
  CHECK(serviceMessage(R"({"host":"x.test","retries":-1})") ==
        "schema violation (retries: value should be between 0 and 32767)");
}

TEST_CASE("service: timeouts must be positive") {
  CHECK(serviceMessage(R"({"host":"x.test","connect_timeout":0})") ==
        "schema violation (connect_timeout: value should be between 1 and 2147483646)");
  CHECK(serviceMessage(R"({"host":"x.test","read_timeout":2147483647})") ==
        "schema violation (read_timeout: value should be between 1 and 2147483646)");
}

TEST_CASE("service: path must start with a slash") {
  CHECK(serviceMessage(R"({"host":"x.test","path":"foo"})") ==
        "schema violation (path: should start with: /)");
}

TEST_CASE("service: path must not have empty segments") {
  CHECK(serviceMessage(R"({"host":"x.test","path":"/a//b"})") ==
        "schema violation (path: must not have empty segments)");
}

TEST_CASE("service: path characters outside RFC 3986") {
  CHECK(serviceMessage(R"({"host":"x.test","path":"/a b"})") ==
        "schema violation (path: invalid path: '/a b' (characters outside of the reserved list "
        "of RFC 3986 found))");
}

TEST_CASE("service: path percent-encoding") {
  CHECK(serviceMessage(R"({"host":"x.test","path":"/a%2Gb"})") ==
        "schema violation (path: invalid url-encoded value: '%2G')");
}

TEST_CASE("service: path must be null for tcp") {
  CHECK(serviceMessage(R"({"host":"x.test","protocol":"tcp","path":"/foo"})") ==
        "2 schema violations (failed conditional validation given value of field 'protocol'; "
        "path: value must be null)");
}

TEST_CASE("service: tls_verify only for https/tls") {
  CHECK(serviceMessage(R"({"host":"x.test","tls_verify":true})") ==
        "2 schema violations (failed conditional validation given value of field 'protocol'; "
        "tls_verify: value must be null)");
  CHECK(serviceMessage(R"({"host":"x.test","protocol":"https","tls_verify":true,
                           "tls_verify_depth":3})") == "ok");
}

TEST_CASE("service: tls_verify_depth range") {
  CHECK(serviceMessage(R"({"host":"x.test","protocol":"https","tls_verify_depth":65})") ==
        "schema violation (tls_verify_depth: value should be between 0 and 64)");
}

TEST_CASE("service: protocol enum") {
  CHECK(serviceMessage(R"({"host":"x.test","protocol":"ftp"})") ==
        "schema violation (protocol: expected one of: grpc, grpcs, http, https, tcp, tls, "
        "tls_passthrough, udp)");
}

TEST_CASE("service: name characters") {
  CHECK(serviceMessage(R"({"host":"x.test","name":"x y"})") ==
        "schema violation (name: invalid value 'x y': the only accepted ascii characters are "
        "alphanumerics or ., -, _, and ~)");
  CHECK(serviceMessage(R"({"host":"x.test","name":"孔~a.b-c_d"})") == "ok");
}

TEST_CASE("service: tags") {
  CHECK(serviceMessage(R"({"host":"x.test","tags":["a b","ok"]})") == "ok");
  CHECK(serviceMessage(R"({"host":"x.test","tags":["a,b"]})") ==
        "schema violation (tags.1: invalid tag 'a,b': expected printable ascii (except `,` and "
        "`/`) or valid utf-8 sequences)");
}

TEST_CASE("service: ca_certificates elements are UUIDs") {
  CHECK(serviceMessage(R"({"host":"x.test","protocol":"https","ca_certificates":["nope"]})") ==
        "schema violation (ca_certificates.1: expected a valid UUID)");
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

TEST_CASE("snapshot: unique ids, names and existing services") {
  v1::Snapshot snap;
  auto* s = snap.add_services();
  s->set_id("6b1c2a5e-6d7e-4c5e-8a1b-0f0e0d0c0b0a");
  s->set_name("a");
  s->set_protocol("http");
  s->set_host("a.test");
  s->set_port(80);
  s->set_retries(5);
  s->set_connect_timeout(1);
  s->set_write_timeout(1);
  s->set_read_timeout(1);
  *snap.add_services() = *s;
  auto* r = snap.add_routes();
  r->set_id("0b4f3c1e-2a6b-4d8e-9f1a-3c5e7a9b1d2f");
  r->add_protocols("http");
  r->add_paths("/");
  r->set_path_handling("v0");
  r->set_https_redirect_status_code(426);
  r->set_service_id("2c5d7e9f-1a3b-4c5d-8e7f-9a1b3c5d7e9f");
  const FieldErrors errors = validateSnapshot(snap);
  REQUIRE(errors.size() == 3);
  CHECK(errors[0].field == "id");
  CHECK(errors[1].field == "name");
  CHECK(errors[2] == FieldError{"routes", r->id(), "service.id",
                                "the foreign key '{id=\"2c5d7e9f-1a3b-4c5d-8e7f-9a1b3c5d7e9f\"}' "
                                "does not reference an existing 'services' entity."});
  snap.mutable_services()->RemoveLast();
  snap.mutable_routes(0)->set_service_id(s->id());
  CHECK(validateSnapshot(snap).empty());
}

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
  CHECK(serviceMessage(("{\"host\":\"a.test\",\"name\":\"" + long_name + "\"}").c_str()) ==
        "schema violation (name: length must be at most 255)");
}

}  // namespace
}  // namespace portico::config

TEST_CASE("snapshot: key-auth credentials (checked on the proto, schema messages)") {
  portico::config::v1::Snapshot s;
  auto* c = s.add_consumers();
  c->set_id("a1b2c3d4-0000-4000-8000-000000000001");
  c->set_username("bob");
  auto add = [&](const std::string& id, const std::string& consumer, const std::string& key) {
    auto* k = s.add_keyauth_credentials();
    k->set_id(id);
    if (!consumer.empty()) k->mutable_consumer()->set_id(consumer);
    k->set_key(key);
    return k;
  };
  add("a1b2c3d4-0000-4000-8000-000000000010", c->id(), "k1");
  CHECK(portico::config::validateSnapshot(s).empty());
  add("a1b2c3d4-0000-4000-8000-000000000011", c->id(), "k1");
  add("a1b2c3d4-0000-4000-8000-000000000012", "a1b2c3d4-0000-4000-8000-00000000ffff", "k2");
  add("a1b2c3d4-0000-4000-8000-000000000013", "", "k3");
  add("not-a-uuid", c->id(), "");
  add("a1b2c3d4-0000-4000-8000-000000000014", c->id(), "k4")->set_ttl(-1);
  using portico::config::FieldError;
  const std::vector<FieldError> want = {
      {"keyauth_credentials", "a1b2c3d4-0000-4000-8000-000000000011", "key",
       "duplicate value: {key=\"k1\"}"},
      {"keyauth_credentials", "a1b2c3d4-0000-4000-8000-000000000012", "consumer.id",
       "the foreign key '{id=\"a1b2c3d4-0000-4000-8000-00000000ffff\"}' does not reference an "
       "existing 'consumers' entity."},
      {"keyauth_credentials", "a1b2c3d4-0000-4000-8000-000000000013", "consumer",
       "required field missing"},
      {"keyauth_credentials", "not-a-uuid", "id", "expected a valid UUID"},
      {"keyauth_credentials", "not-a-uuid", "key", "length must be at least 1"},
      {"keyauth_credentials", "a1b2c3d4-0000-4000-8000-000000000014", "ttl",
       "value should be between 0 and 100000000"},
  };
  CHECK(portico::config::validateSnapshot(s) == want);
}
