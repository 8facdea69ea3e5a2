#include "common/config/entities/entity_schemas.h"

#include "common/config/typedefs.h"

namespace portico::config {

EntitySchema routesSchema() {
  EntitySchema s;
  s.name = "routes";
  s.endpoint_key = "name";
  const auto protocols = jsonList({"grpc", "grpcs", "http", "https", "tcp", "tls",
                                   "tls_passthrough", "udp"});
  s.fields = {idField(), timestampField("created_at"), timestampField("updated_at"),
              utf8NameField("name").isUnique(),
              Field::set("protocols", Field::string("p").oneOf(protocols))
                  .req()
                  .lenMin(1)
                  .def(Json::array({"http", "https"})),
              Field::set("methods", Field::string("m")), Field::array("hosts", Field::string("h")),
              Field::array("paths", Field::string("p").lenMax(kMaxPathLength)),
              Field::map("headers", Field::string("k"), Field::array("v", Field::string("v"))),
              Field::integer("https_redirect_status_code")
                  .req()
                  .def(426)
                  .oneOf({426, 301, 302, 307, 308}),
              Field::integer("regex_priority").def(0),
              Field::boolean("strip_path").req().def(true),
              Field::string("path_handling").def("v0").oneOf(jsonList({"v0", "v1"})),
              Field::boolean("preserve_host").req().def(false),
              Field::boolean("request_buffering").req().def(true),
              Field::boolean("response_buffering").req().def(true),
              Field::set("snis", Field::string("sni")), Field::set("sources", Field::json("s")),
              Field::set("destinations", Field::json("d")), tagsField(),
              Field::foreign("service", "services")};
  return s;
}

}  // namespace portico::config
