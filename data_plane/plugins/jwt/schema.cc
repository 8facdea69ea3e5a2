// jwt's config schema (Kong 3.10, PRIORITY 1450).
#include "common/config/entities.h"

namespace portico::dp::plugins::jwt {

config::PluginSchema schema() {
  using config::Field;
  using config::Json;
  config::PluginSchema p = config::httpPluginSchema(
      "jwt", 1450,
      {Field::set("uri_param_names", Field::string("p")).def(Json::array({"jwt"})),
       Field::set("cookie_names", Field::string("c")).def(Json::array()),
       Field::string("key_claim_name").def("iss"),
       Field::boolean("secret_is_base64").req().def(false),
       Field::set("claims_to_verify", Field::string("c").oneOf(config::jsonList({"exp", "nbf"}))),
       Field::string("anonymous"), Field::boolean("run_on_preflight").req().def(true),
       Field::number("maximum_expiration").def(0).range(0, 31536000),
       Field::set("header_names", Field::string("h")).def(Json::array({"authorization"})),
       Field::string("realm")});
  p.no_consumer = true;
  config::EntityCheck check;
  check.fn = [](const Json& e) -> std::string {
    const Json& c = e["config"];
    if (!c.is_object() || !c.contains("maximum_expiration") ||
        !c["maximum_expiration"].is_number() || c["maximum_expiration"].get<double>() <= 0) {
      return "";
    }
    if (c.contains("claims_to_verify") && c["claims_to_verify"].is_array()) {
      for (const auto& claim : c["claims_to_verify"]) {
        if (claim == "exp") return "";
      }
    }
    return "expected to contain: exp";
  };
  p.checks = {check};
  return p;
}

}  // namespace portico::dp::plugins::jwt
