// key-auth's config schema (Kong 3.10, PRIORITY 1250).
#include "common/config/entities.h"

namespace portico::dp::plugins::key_auth {

config::PluginSchema schema() {
  using config::Field;
  using config::Json;
  config::PluginSchema p = config::httpPluginSchema(
      "key-auth", 1250,
      {Field::array("key_names", config::headerNameField("name"))
           .req()
           .def(Json::array({"apikey"})),
       Field::boolean("hide_credentials").req().def(false), Field::string("anonymous"),
       Field::boolean("key_in_header").req().def(true),
       Field::boolean("key_in_query").req().def(true),
       Field::boolean("key_in_body").req().def(false),
       Field::boolean("run_on_preflight").req().def(true), Field::string("realm")});
  p.no_consumer = true;
  return p;
}

}  // namespace portico::dp::plugins::key_auth
