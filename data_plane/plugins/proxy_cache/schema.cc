// proxy-cache's config schema (Kong 3.10, PRIORITY 100). The one strategy is `memory`: a
// bounded cache per DP process (cache_store.h); `memory.dictionary_name` must name the shared
// dictionary Kong's own nginx template has for it, as a Kong node refuses any other.
#include "common/config/entities.h"

namespace portico::dp::plugins::proxy_cache {

config::PluginSchema schema() {
  using config::Field;
  using config::Json;
  auto strings = [](const char* name) { return Field::array(name, Field::string(name)); };
  config::PluginSchema p = config::httpPluginSchema(
      "proxy-cache", 100,
      {Field::array("response_code", Field::integer("response_code").range(100, 900))
           .req()
           .def(Json::array({200, 301, 404}))
           .lenMin(1),
       Field::array("request_method",
                    Field::string("request_method")
                        .oneOf(config::jsonList({"HEAD", "GET", "POST", "PATCH", "PUT"})))
           .req()
           .def(Json::array({"GET", "HEAD"})),
       strings("content_type").req().def(Json::array({"text/plain", "application/json"})),
       Field::integer("cache_ttl").def(300).validator([](Json& v) -> std::string {
         return v.get<double>() > 0 ? "" : "value must be greater than 0";  // Kong's gt = 0
       }),
       Field::string("strategy").req().oneOf(config::jsonList({"memory"})),
       Field::boolean("cache_control").req().def(false),
       Field::boolean("ignore_uri_case").def(false),
       Field::integer("storage_ttl"),
       // Records are filled with their fields' defaults when absent, as Kong shows them.
       Field::record("memory", {Field::string("dictionary_name").req().def("kong_db_cache")})
           .req(),
       strings("vary_query_params"), strings("vary_headers"),
       Field::record("response_headers", {Field::boolean("age").def(true),
                                          Field::boolean("X-Cache-Status").def(true),
                                          Field::boolean("X-Cache-Key").def(true)})
           .req()});
  config::EntityCheck check;
  check.fields = {"config"};
  check.fn = [](const Json& e) -> std::string {
    const Json& c = e["config"];
    if (!c.is_object() || c.value("strategy", "") != "memory" || !c["memory"].is_object()) {
      return "";
    }
    const Json& name = c["memory"]["dictionary_name"];
    if (name.is_string() && name != "kong_db_cache") {
      return "missing shared dict '" + name.get<std::string>() + "'";
    }
    return "";
  };
  p.checks = {check};
  return p;
}

}  // namespace portico::dp::plugins::proxy_cache
