// The services schema: one TEST_CASE per accepted or rejected service, checking Kong's exact
// message, defaults and the `url` shorthand, and the proto the DP receives.
#include <catch2/catch.hpp>

#include "common/config/entities.h"
#include "tests/unit/common/config/config_test_util.h"

namespace portico::config {
namespace {

using testing::violation;

std::string serviceMessage(const char* json) { return testing::message("services", json); }

FieldErrors service(const char* json, Json* out, v1::Service* proto = nullptr) {
  return testing::process("services", Json::parse(json), out, proto);
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

TEST_CASE("service: defaults and encoding with nulls") {
  Json j;
  REQUIRE(service(R"j({"host":"www.example.com"})j", &j).empty());
  CHECK(j["protocol"] == "http");
  CHECK(j["port"] == 80);
  CHECK(j["retries"] == 5);
  CHECK(j["connect_timeout"] == 60000);
  CHECK(j["write_timeout"] == 60000);
  CHECK(j["read_timeout"] == 60000);
  CHECK(j["enabled"] == true);
  for (const char* null_field : {"name", "path", "tags", "client_certificate", "tls_verify",
                                 "tls_verify_depth", "ca_certificates"}) {
    INFO(null_field);
    CHECK(j[null_field].is_null());
  }
  CHECK(j.size() == 18);
  CHECK_FALSE(j.contains("url"));
  // What the DP receives maps back to the same JSON.
  v1::Service s;
  REQUIRE(jsonToProto(j, &s));
  Json again = protoToJson(s);
  again["id"] = nullptr;
  again["created_at"] = nullptr;
  again["updated_at"] = nullptr;
  CHECK(again == j);
}

TEST_CASE("service: url shorthand") {
  Json j;
  v1::Service s;
  REQUIRE(service(R"j({"url":"https://example.com:8000/hello/world"})j", &j, &s).empty());
  CHECK(s.protocol() == "https");
  CHECK(s.host() == "example.com");
  CHECK(s.port() == 8000);
  CHECK(s.path() == "/hello/world");
  s.Clear();
  REQUIRE(service(R"j({"url":"https://example.com"})j", &j, &s).empty());
  CHECK(s.port() == 443);
  CHECK_FALSE(s.has_path());
  s.Clear();
  REQUIRE(service(R"j({"url":"http://x.test/"})j", &j, &s).empty());
  CHECK(s.port() == 80);
  CHECK(s.path() == "/");
  CHECK(serviceMessage(R"j({"url":5})j") ==
        "2 schema violations (host: required field missing; url: expected a string)");
}

TEST_CASE("service: unknown field") {
  Json j;
  const FieldErrors errors = service(R"j({"host":"a.test","foo":1})j", &j);
  CHECK(violation(errors) == "schema violation (foo: unknown field)");
  CHECK(fieldsObject(errors) == Json::parse(R"j({"foo":"unknown field"})j"));
}

TEST_CASE("service: expected a string / an integer / a boolean") {
  CHECK(serviceMessage(R"j({"host":1})j") == "schema violation (host: expected a string)");
  CHECK(serviceMessage(R"j({"host":"a.test","port":"80"})j") ==
        "schema violation (port: expected an integer)");
  CHECK(serviceMessage(R"j({"host":"a.test","port":80.5})j") ==
        "schema violation (port: expected an integer)");
  CHECK(serviceMessage(R"j({"host":"a.test","enabled":"yes"})j") ==
        "schema violation (enabled: expected a boolean)");
}

TEST_CASE("service: required field with default set to null") {
  CHECK(serviceMessage(R"j({"host":"a.test","protocol":null})j") ==
        "schema violation (protocol: required field missing)");
  // Optional fields with a default take it when null.
  Json j;
  REQUIRE(service(R"j({"host":"a.test","retries":null})j", &j).empty());
  CHECK(j["retries"] == 5);
}

TEST_CASE("service: several errors sorted, @entity first") {
  Json j;
  const FieldErrors errors =
      service(R"j({"host":"a.test:80","protocol":"tcp","path":"/x","retries":-1})j", &j);
  CHECK(violation(errors) ==
        "4 schema violations (failed conditional validation given value of field 'protocol'; "
        "host: must not have a port; path: value must be null; retries: value should be between "
        "0 and 32767)");
  CHECK(fieldsObject(errors) == Json::parse(R"j({
    "@entity":["failed conditional validation given value of field 'protocol'"],
    "host":"must not have a port","path":"value must be null",
    "retries":"value should be between 0 and 32767"})j"));
}

TEST_CASE("service: PATCH expands url over the current fields") {
  Json current;
  REQUIRE(service(R"j({"host":"a.test","path":"/p"})j", &current).empty());
  const Json patch =
      expandShorthands(*findEntitySchema("services"), Json::parse(R"j({"url":"https://b.test"})j"));
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    current[it.key()] = it.value();
  }
  Json j;
  v1::Service out;
  REQUIRE(testing::process("services", current, &j, &out).empty());
  CHECK(out.host() == "b.test");
  CHECK(out.port() == 443);
  CHECK_FALSE(out.has_path());
  // A url of the wrong type stays for the merged entity's check to report.
  CHECK(expandShorthands(*findEntitySchema("services"), Json::parse(R"j({"url":5})j")) ==
        Json::parse(R"j({"url":5})j"));
}

}  // namespace
}  // namespace portico::config
