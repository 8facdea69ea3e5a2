// Kong Admin API JSON mapping: type errors, defaults, shorthands, encoding and error bodies.
#include <catch2/catch.hpp>

#include "common/config/kong_json.h"

namespace portico::config {
namespace {

Json serviceErrors(const char* json) {
  v1::Service s;
  const FieldErrors errors = decodeService(Json::parse(json), &s);
  return errors.empty() ? Json("ok") : schemaViolationBody(errors);
}

Json routeErrors(const char* json) {
  v1::Route r;
  std::optional<std::string> name;
  const FieldErrors errors = decodeRoute(Json::parse(json), &r, &name);
  return errors.empty() ? Json("ok") : schemaViolationBody(errors);
}

TEST_CASE("kong_json: service defaults and encoding with nulls") {
  v1::Service s;
  REQUIRE(decodeService(Json::parse(R"j({"host":"www.example.com"})j"), &s).empty());
  const Json j = encodeService(s);
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
}

TEST_CASE("kong_json: service url shorthand") {
  v1::Service s;
  REQUIRE(decodeService(Json::parse(R"j({"url":"https://example.com:8000/hello/world"})j"), &s)
              .empty());
  CHECK(s.protocol() == "https");
  CHECK(s.host() == "example.com");
  CHECK(s.port() == 8000);
  CHECK(s.path() == "/hello/world");
  REQUIRE(decodeService(Json::parse(R"j({"url":"https://example.com"})j"), &s).empty());
  CHECK(s.port() == 443);
  CHECK_FALSE(s.has_path());
  REQUIRE(decodeService(Json::parse(R"j({"url":"http://x.test/"})j"), &s).empty());
  CHECK(s.port() == 80);
  CHECK(s.path() == "/");
}

TEST_CASE("kong_json: unknown field") {
  CHECK(serviceErrors(R"j({"host":"a.test","foo":1})j") ==
        Json::parse(R"j({"code":2,"name":"schema violation",
          "message":"schema violation (foo: unknown field)","fields":{"foo":"unknown field"}})j"));
}

TEST_CASE("kong_json: expected a string / an integer / a boolean") {
  CHECK(serviceErrors(R"j({"host":1})j")["message"] == "schema violation (host: expected a string)");
  CHECK(serviceErrors(R"j({"host":"a.test","port":"80"})j")["message"] ==
        "schema violation (port: expected an integer)");
  CHECK(serviceErrors(R"j({"host":"a.test","port":80.5})j")["message"] ==
        "schema violation (port: expected an integer)");
  CHECK(serviceErrors(R"j({"host":"a.test","enabled":"yes"})j")["message"] ==
        "schema violation (enabled: expected a boolean)");
  CHECK(routeErrors(R"j({"paths":"/"})j")["message"] == "schema violation (paths: expected an array)");
  CHECK(routeErrors(R"j({"paths":["/"],"methods":"GET"})j")["message"] ==
        "schema violation (methods: expected a set)");
  CHECK(routeErrors(R"j({"paths":[1]})j")["message"] == "schema violation (paths.1: expected a string)");
}

TEST_CASE("kong_json: required field with default set to null") {
  CHECK(serviceErrors(R"j({"host":"a.test","protocol":null})j")["message"] ==
        "schema violation (protocol: required field missing)");
}

TEST_CASE("kong_json: several errors sorted, @entity first") {
  const Json body = serviceErrors(R"j({"host":"a.test:80","protocol":"tcp","path":"/x","retries":-1})j");
  CHECK(body["message"] ==
        "4 schema violations (failed conditional validation given value of field 'protocol'; "
        "host: must not have a port; path: value must be null; retries: value should be between "
        "0 and 32767)");
  CHECK(body["fields"] == Json::parse(R"j({
    "@entity":["failed conditional validation given value of field 'protocol'"],
    "host":"must not have a port","path":"value must be null",
    "retries":"value should be between 0 and 32767"})j"));
}

TEST_CASE("kong_json: array errors positioned by element") {
  const Json body = routeErrors(R"j({"paths":["/ok","bad"]})j");
  CHECK(body["fields"] ==
        Json::parse(R"j({"paths":[null,"should start with: / (fixed path) or ~/ (regex path)"]})j"));
}

TEST_CASE("kong_json: route defaults") {
  v1::Route r;
  std::optional<std::string> name;
  REQUIRE(decodeRoute(Json::parse(R"j({"paths":["/"]})j"), &r, &name).empty());
  const Json j = encodeRoute(r);
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

TEST_CASE("kong_json: route service reference") {
  v1::Route r;
  std::optional<std::string> name;
  REQUIRE(decodeRoute(Json::parse(R"j({"paths":["/"],"service":{"name":"svc"}})j"), &r, &name)
              .empty());
  CHECK(name == "svc");
  CHECK_FALSE(r.has_service_id());
  REQUIRE(decodeRoute(Json::parse(
                          R"j({"paths":["/"],"service":{"id":"6b1c2a5e-6d7e-4c5e-8a1b-0f0e0d0c0b0a"}})j"),
                      &r, &name)
              .empty());
  CHECK(r.service_id() == "6b1c2a5e-6d7e-4c5e-8a1b-0f0e0d0c0b0a");
  CHECK(encodeRoute(r)["service"] == Json::parse(R"j({"id":"6b1c2a5e-6d7e-4c5e-8a1b-0f0e0d0c0b0a"})j"));
  CHECK(routeErrors(R"j({"methods":["GET"],"service":{"protocol":"http"}})j") ==
        Json::parse(R"j({"code":2,"name":"schema violation",
          "message":"schema violation (service.id: missing primary key)",
          "fields":{"service":{"id":"missing primary key"}}})j"));
  CHECK(routeErrors(R"j({"methods":["GET"],"service":{"id":"x"}})j")["message"] ==
        "schema violation (service.id: expected a valid UUID)");
}

TEST_CASE("kong_json: grpc routes default strip_path to false") {
  v1::Route r;
  std::optional<std::string> name;
  REQUIRE(decodeRoute(Json::parse(R"j({"protocols":["grpc"],"paths":["/"]})j"), &r, &name).empty());
  CHECK_FALSE(r.strip_path());
}

TEST_CASE("kong_json: round trip") {
  v1::Route r;
  std::optional<std::string> name;
  const Json in = Json::parse(R"j({"name":"r1","protocols":["https"],"methods":["GET","POST"],
      "hosts":["a.test"],"paths":["/x"],"headers":{"x-v":["1"]},"snis":["a.test"],
      "tags":["t1"],"regex_priority":3,"strip_path":false})j");
  REQUIRE(decodeRoute(in, &r, &name).empty());
  v1::Route again;
  REQUIRE(decodeRoute(encodeRoute(r), &again, &name).empty());
  CHECK(again.SerializeAsString() == r.SerializeAsString());
}

TEST_CASE("kong_json: mergePatch expands url over the current fields") {
  v1::Service s;
  REQUIRE(decodeService(Json::parse(R"j({"host":"a.test","path":"/p"})j"), &s).empty());
  const Json merged = mergePatch(encodeService(s), Json::parse(R"j({"url":"https://b.test"})j"), true);
  v1::Service out;
  REQUIRE(decodeService(merged, &out).empty());
  CHECK(out.host() == "b.test");
  CHECK(out.port() == 443);
  CHECK_FALSE(out.has_path());
}

}  // namespace
}  // namespace portico::config
