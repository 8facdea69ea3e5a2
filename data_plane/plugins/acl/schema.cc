// acl's config schema (Kong 3.10, PRIORITY 950).
#include "common/config/entities.h"

namespace portico::dp::plugins::acl {

config::PluginSchema schema() {
  using config::Field;
  using config::Json;
  config::PluginSchema p = config::httpPluginSchema(
      "acl", 950,
      {Field::array("allow", Field::string("group")), Field::array("deny", Field::string("group")),
       Field::boolean("hide_groups_header").req().def(false),
       Field::boolean("always_use_authenticated_groups").req().def(false)});
  p.no_consumer = true;
  config::EntityCheck allow_deny;
  allow_deny.fn = [](const Json& e) -> std::string {
    const Json& c = e["config"];
    if (!c.is_object()) {
      return "";
    }
    const bool allow = c.contains("allow") && c["allow"].is_array() && !c["allow"].empty();
    const bool deny = c.contains("deny") && c["deny"].is_array() && !c["deny"].empty();
    if (allow && deny) {
      return "exactly one of these fields must be non-empty: 'config.allow', 'config.deny'";
    }
    if (!allow && !deny) {
      return "at least one of these fields must be non-empty: 'config.allow', 'config.deny'";
    }
    return "";
  };
  p.checks = {allow_deny};
  return p;
}

}  // namespace portico::dp::plugins::acl
