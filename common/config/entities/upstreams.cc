#include "common/config/entities/entity_schemas.h"

#include "common/config/typedefs.h"

namespace portico::config {

namespace {

std::string upstreamNameCheck(Json& v) {
  const std::string name = v.get<std::string>();
  if (std::string too_long = checkHostLength(name, false); !too_long.empty()) {
    return too_long;
  }
  bool has_port = false;
  const std::string kind = classifyHost(name, &has_port);
  if (kind.empty()) {
    return "Invalid name ('" + name + "'); must be a valid hostname";
  }
  if (kind != "name") {
    return "Invalid name ('" + name + "'); no ip addresses allowed";
  }
  if (has_port) {
    return "Invalid name ('" + name + "'); no port allowed";
  }
  return "";
}

Field statusesField(const std::string& name, Json def) {
  return Field::array(name, Field::integer("s").range(100, 999)).def(std::move(def));
}

Field healthchecksField() {
  Field active = Field::record(
      "active",
      {Field::string("type").def("http").oneOf(jsonList({"tcp", "http", "https", "grpc", "grpcs"})),
       Field::number("timeout").def(1).range(0, 65535),
       Field::integer("concurrency").def(10).range(1, 2147483648.0),
       Field::string("http_path").def("/"), Field::string("https_sni"),
       Field::boolean("https_verify_certificate").def(true),
       Field::map("headers", Field::string("k"), Field::array("v", Field::string("v"))),
       Field::record("healthy", {Field::number("interval").def(0).range(0, 65535),
                                 statusesField("http_statuses", Json::array({200, 302})),
                                 Field::integer("successes").def(0).range(0, 255)})
           .def(Json::object()),
       Field::record("unhealthy",
                     {Field::number("interval").def(0).range(0, 65535),
                      statusesField("http_statuses",
                                    Json::array({429, 404, 500, 501, 502, 503, 504, 505})),
                      Field::integer("tcp_failures").def(0).range(0, 255),
                      Field::integer("timeouts").def(0).range(0, 255),
                      Field::integer("http_failures").def(0).range(0, 255)})
           .def(Json::object())});
  Field passive = Field::record(
      "passive",
      {Field::string("type").def("http").oneOf(jsonList({"tcp", "http", "https", "grpc", "grpcs"})),
       Field::record("healthy",
                     {statusesField("http_statuses",
                                    Json::array({200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
                                                 300, 301, 302, 303, 304, 305, 306, 307, 308})),
                      Field::integer("successes").def(0).range(0, 255)})
           .def(Json::object()),
       Field::record("unhealthy", {statusesField("http_statuses", Json::array({429, 500, 503})),
                                   Field::integer("tcp_failures").def(0).range(0, 255),
                                   Field::integer("timeouts").def(0).range(0, 255),
                                   Field::integer("http_failures").def(0).range(0, 255)})
           .def(Json::object())});
  return Field::record("healthchecks", {active.def(Json::object()), passive.def(Json::object()),
                                        Field::number("threshold").def(0).range(0, 100)})
      .def(Json::object());
}

}  // namespace

EntitySchema upstreamsSchema() {
  EntitySchema s;
  s.name = "upstreams";
  s.endpoint_key = "name";
  const auto hash_on = jsonList(
      {"none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"});
  s.fields = {idField(),
              timestampField("created_at"),
              timestampField("updated_at"),
              Field::string("name").req().lenMax(kMaxHostLength).isUnique().validator(
                  upstreamNameCheck),
              Field::string("algorithm")
                  .def("round-robin")
                  .oneOf(jsonList({"consistent-hashing", "least-connections", "round-robin",
                                   "latency"})),
              Field::string("hash_on").def("none").oneOf(hash_on),
              Field::string("hash_fallback").def("none").oneOf(hash_on),
              headerNameField("hash_on_header"),
              headerNameField("hash_fallback_header"),
              Field::string("hash_on_cookie").lenMax(kMaxNameLength),
              Field::string("hash_on_cookie_path").def("/").validator([](Json& v) {
                return checkServicePath(v.get<std::string>());
              }),
              Field::string("hash_on_query_arg").lenMax(kMaxNameLength),
              Field::string("hash_fallback_query_arg").lenMax(kMaxNameLength),
              Field::string("hash_on_uri_capture").lenMax(kMaxNameLength),
              Field::string("hash_fallback_uri_capture").lenMax(kMaxNameLength),
              Field::integer("slots").def(10000).range(10, 65536),
              healthchecksField(),
              tagsField(),
              Field::string("host_header").lenMax(kMaxHostLength).validator([](Json& v) {
                return checkHost(v.get<std::string>());
              }),
              Field::foreign("client_certificate", "certificates"),
              Field::boolean("use_srv_name").def(false)};
  auto conditional = [](const char* if_field, const char* value, const char* then_field) {
    EntityCheck c;
    c.kind = EntityCheck::Kind::kConditional;
    c.if_field = if_field;
    c.if_one_of = {Json(value)};
    c.then_field = then_field;
    return c;
  };
  s.checks = {conditional("hash_on", "header", "hash_on_header"),
              conditional("hash_fallback", "header", "hash_fallback_header"),
              conditional("hash_on", "cookie", "hash_on_cookie"),
              conditional("hash_fallback", "cookie", "hash_on_cookie"),
              conditional("hash_on", "query_arg", "hash_on_query_arg"),
              conditional("hash_fallback", "query_arg", "hash_fallback_query_arg"),
              conditional("hash_on", "uri_capture", "hash_on_uri_capture"),
              conditional("hash_fallback", "uri_capture", "hash_fallback_uri_capture")};
  return s;
}


}  // namespace portico::config
