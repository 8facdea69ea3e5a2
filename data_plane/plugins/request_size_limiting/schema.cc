// request-size-limiting's config schema (Kong 3.10, PRIORITY 951).
#include "common/config/entities.h"

namespace portico::dp::plugins::request_size_limiting {

config::PluginSchema schema() {
  using config::Field;
  return config::httpPluginSchema(
      "request-size-limiting", 951,
      {Field::integer("allowed_payload_size").req().def(128),
       Field::string("size_unit").req().def("megabytes").oneOf(
           config::jsonList({"megabytes", "kilobytes", "bytes"})),
       Field::boolean("require_content_length").req().def(false)});
}

}  // namespace portico::dp::plugins::request_size_limiting
