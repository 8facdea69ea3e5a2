// request-termination's config schema (Kong 3.10, PRIORITY 2).
#include "common/config/entities.h"

namespace portico::dp::plugins::request_termination {

config::PluginSchema schema() {
  using config::Field;
  using config::Json;
  config::PluginSchema p = config::httpPluginSchema(
      "request-termination", 2,
      {Field::integer("status_code").req().def(503).range(100, 599), Field::string("message"),
       Field::string("content_type"), Field::string("body"),
       Field::boolean("echo").req().def(false), config::headerNameField("trigger")});
  config::EntityCheck check;
  check.fn = [](const Json& e) -> std::string {
    const Json& c = e["config"];
    if (!c.is_object()) {
      return "";
    }
    auto set = [&c](const char* f) { return c.contains(f) && c[f].is_string(); };
    if (set("message") && (set("content_type") || set("body"))) {
      return "message cannot be used with content_type or body";
    }
    if (set("content_type") && !set("body")) {
      return "content_type requires a body";
    }
    if (c.value("echo", false) && set("content_type") && set("body")) {
      return "echo cannot be used with content_type and body";
    }
    return "";
  };
  p.checks = {check};
  return p;
}

}  // namespace portico::dp::plugins::request_termination
