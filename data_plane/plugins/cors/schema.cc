// cors's config schema (Kong 3.10, PRIORITY 2000).
#include <re2/re2.h>

#include "common/config/entities.h"

namespace portico::dp::plugins::cors {

config::PluginSchema schema() {
  using config::Field;
  using config::Json;
  const Field origin = Field::string("origin").validator([](Json& v) -> std::string {
    const std::string s = v.get<std::string>();
    if (s == "*" || s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789.:/-") == std::string::npos) {
      return "";
    }
    RE2 re(s, RE2::Quiet);
    return re.ok() ? "" : "'" + s + "' is not a valid regex";
  });
  const std::vector<Json> methods = config::jsonList(
      {"GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT"});
  config::PluginSchema p = config::httpPluginSchema(
      "cors", 2000,
      {Field::array("origins", origin), Field::array("headers", Field::string("header")),
       Field::array("exposed_headers", Field::string("header")),
       Field::array("methods", Field::string("method").oneOf(methods)).def(Json(methods)),
       Field::number("max_age"), Field::boolean("credentials").req().def(false),
       Field::boolean("private_network").req().def(false),
       Field::boolean("preflight_continue").req().def(false),
       Field::boolean("allow_origin_absent").req().def(true)});
  p.no_consumer = true;
  return p;
}

}  // namespace portico::dp::plugins::cors
