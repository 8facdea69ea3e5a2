// correlation-id's config schema (Kong 3.10, PRIORITY 100001).
#include "common/config/entities.h"

namespace portico::dp::plugins::correlation_id {

config::PluginSchema schema() {
  using config::Field;
  return config::httpPluginSchema(
      "correlation-id", 100001,
      {Field::string("header_name").def("Kong-Request-ID"),
       Field::string("generator").req().def("uuid#counter").oneOf(
           config::jsonList({"uuid", "uuid#counter", "tracker"})),
       Field::boolean("echo_downstream").req().def(false)});
}

}  // namespace portico::dp::plugins::correlation_id
