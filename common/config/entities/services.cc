#include "common/config/entities/entity_schemas.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "common/config/typedefs.h"

namespace portico::config {
namespace {

// Kong's services `url` shorthand: scheme, host, port (else 80, or 443 for https) and path
// replace protocol, host, port and path.
void expandServiceUrl(const Json& value, Json* service) {
  std::string url = value.get<std::string>();
  std::string scheme;
  if (const size_t sep = url.find("://"); sep != std::string::npos) {
    scheme = url.substr(0, sep);
    url = url.substr(sep + 3);
  }
  const size_t path_start = url.find_first_of("/?#");
  std::string authority = url.substr(0, path_start);
  std::string path;
  if (path_start != std::string::npos && url[path_start] == '/') {
    path = url.substr(path_start);
    path = path.substr(0, path.find_first_of("?#"));
  }
  if (const size_t at = authority.rfind('@'); at != std::string::npos) {
    authority = authority.substr(at + 1);
  }
  std::string host = authority;
  std::optional<int64_t> port;
  const size_t bracket = authority.rfind(']');
  const size_t colon = authority.rfind(':');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    host = authority.substr(0, colon);
    const std::string port_text = authority.substr(colon + 1);
    if (!port_text.empty() && std::all_of(port_text.begin(), port_text.end(), ::isdigit) &&
        port_text.size() < 10) {
      port = std::stoll(port_text);
    } else {
      host = authority;
    }
  }
  Json& s = *service;
  s["protocol"] = scheme.empty() ? "http" : scheme;
  if (!host.empty()) {
    s["host"] = host;
  }
  s["port"] = port ? *port : scheme == "https" ? 443 : 80;
  s["path"] = path.empty() ? Json(nullptr) : Json(path);
}

// Kong's conditional with then_match = { eq = null }: `field` only for some protocols.
EntityCheck nullUnlessProtocol(const char* field, std::vector<Json> protocols, bool not_one_of) {
  EntityCheck c;
  c.kind = EntityCheck::Kind::kConditional;
  c.if_field = "protocol";
  c.if_one_of = std::move(protocols);
  c.if_not_one_of = not_one_of;
  c.then_field = field;
  c.then_null = true;
  return c;
}

}  // namespace

EntitySchema servicesSchema() {
  EntitySchema s;
  s.name = "services";
  s.endpoint_key = "name";
  auto timeout = [](const char* name) {
    return Field::integer(name).def(60000).nullAsDefault().range(1, 2147483646);
  };
  Field ca = Field::string("ca").lenMin(0);
  ca.uuid = true;
  s.fields = {idField(), timestampField("created_at"), timestampField("updated_at"),
              utf8NameField("name").isUnique(),
              Field::integer("retries").def(5).nullAsDefault().range(0, 32767),
              Field::string("protocol").req().def("http").oneOf(allProtocols()),
              Field::string("host").req().lenMax(kMaxHostLength).validator([](Json& v) {
                return checkHost(v.get<std::string>());
              }),
              Field::integer("port").req().def(80).range(0, 65535),
              Field::string("path").lenMax(kMaxPathLength).validator([](Json& v) {
                return checkServicePath(v.get<std::string>());
              }),
              timeout("connect_timeout"), timeout("write_timeout"), timeout("read_timeout"),
              tagsField().emptyAsNull(),
              Field::foreign("client_certificate", "certificates"),
              Field::boolean("tls_verify"), Field::integer("tls_verify_depth").range(0, 64),
              Field::array("ca_certificates", ca).emptyAsNull(),
              Field::boolean("enabled").req().def(true)};
  s.shorthands = {{Field::string("url"), expandServiceUrl}};
  const std::vector<Json> tls = jsonList({"https", "tls"});
  s.checks = {nullUnlessProtocol("path", jsonList({"tcp", "tls", "udp", "grpc", "grpcs"}), false),
              nullUnlessProtocol("client_certificate", tls, true),
              nullUnlessProtocol("tls_verify", tls, true),
              nullUnlessProtocol("tls_verify_depth", tls, true),
              nullUnlessProtocol("ca_certificates", tls, true)};
  return s;
}

}  // namespace portico::config
