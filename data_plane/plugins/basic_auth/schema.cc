// basic-auth's config schema (Kong 3.10, PRIORITY 1100).
#include "common/config/entities.h"

namespace portico::dp::plugins::basic_auth {

config::PluginSchema schema() {
  using config::Field;
  config::PluginSchema p = config::httpPluginSchema(
      "basic-auth", 1100,
      {Field::string("anonymous"), Field::boolean("hide_credentials").req().def(false),
       Field::string("realm").req().def("service")});
  p.no_consumer = true;
  return p;
}

}  // namespace portico::dp::plugins::basic_auth
