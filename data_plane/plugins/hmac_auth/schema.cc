// hmac-auth's config schema (Kong 3.10, PRIORITY 1030).
#include "common/config/entities.h"

namespace portico::dp::plugins::hmac_auth {

config::PluginSchema schema() {
  using config::Field;
  using config::Json;
  const auto algorithms =
      config::jsonList({"hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512"});
  config::PluginSchema p = config::httpPluginSchema(
      "hmac-auth", 1030,
      {Field::boolean("hide_credentials").req().def(false),
       Field::number("clock_skew").def(300).range(0, 1e15), Field::string("anonymous"),
       Field::boolean("validate_request_body").req().def(false),
       Field::array("enforce_headers", Field::string("h")).def(Json::array()),
       Field::array("algorithms", Field::string("a").oneOf(algorithms)).def(Json(algorithms)),
       Field::string("realm")});
  p.no_consumer = true;
  return p;
}

}  // namespace portico::dp::plugins::hmac_auth
