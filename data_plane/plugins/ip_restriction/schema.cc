// ip-restriction's config schema (Kong 3.10, PRIORITY 990).
#include "common/config/entities.h"
#include "data_plane/plugins/ip_restriction/cidr.h"

namespace portico::dp::plugins::ip_restriction {

config::PluginSchema schema() {
  using config::Field;
  using config::Json;
  const Field cidr = Field::string("cidr").validator([](Json& v) -> std::string {
    const std::string s = v.get<std::string>();
    return parseCidr(s) ? "" : "invalid ip or cidr range: '" + s + "'";
  });
  config::PluginSchema p = config::httpPluginSchema(
      "ip-restriction", 990,
      {Field::array("allow", cidr), Field::array("deny", cidr),
       Field::integer("status"), Field::string("message")});
  p.protocols = config::jsonList({"http", "https", "tcp", "tls", "grpc", "grpcs"});
  config::EntityCheck check;
  check.fn = [](const Json& e) -> std::string {
    const Json& c = e["config"];
    if (!c.is_object()) {
      return "";
    }
    const bool allow = c.contains("allow") && c["allow"].is_array() && !c["allow"].empty();
    const bool deny = c.contains("deny") && c["deny"].is_array() && !c["deny"].empty();
    return allow || deny
               ? ""
               : "at least one of these fields must be non-empty: 'config.allow', 'config.deny'";
  };
  p.checks = {check};
  return p;
}

}  // namespace portico::dp::plugins::ip_restriction
