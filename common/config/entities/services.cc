#include "common/config/entities/entity_schemas.h"

#include "common/config/typedefs.h"

namespace portico::config {

EntitySchema servicesSchema() {
  // Metadata only: services are validated by the hand-written codec (kong_json.h); this
  // describes keys, references and GET /schemas/services.
  EntitySchema s;
  s.name = "services";
  s.endpoint_key = "name";
  s.fields = {idField(), timestampField("created_at"), timestampField("updated_at"),
              utf8NameField("name").isUnique(),
              Field::integer("retries").def(5).range(0, 32767),
              Field::string("protocol").req().def("http").oneOf(jsonList(
                  {"grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp"})),
              Field::string("host").req().lenMax(kMaxHostLength),
              Field::integer("port").req().def(80).range(0, 65535),
              Field::string("path").lenMax(kMaxPathLength),
              Field::integer("connect_timeout").def(60000).range(1, 2147483646),
              Field::integer("write_timeout").def(60000).range(1, 2147483646),
              Field::integer("read_timeout").def(60000).range(1, 2147483646), tagsField(),
              Field::foreign("client_certificate", "certificates"),
              Field::boolean("tls_verify"), Field::integer("tls_verify_depth").range(0, 64),
              Field::array("ca_certificates", Field::string("ca")),
              Field::boolean("enabled").req().def(true)};
  return s;
}

}  // namespace portico::config
