#include "common/config/entities/entity_schemas.h"

#include <map>

#include "common/config/typedefs.h"

namespace portico::config {

PluginSchema httpPluginSchema(std::string name, int32_t priority, std::vector<Field> config) {
  PluginSchema p;
  p.name = std::move(name);
  p.priority = priority;
  p.config = Field::record("config", std::move(config)).req();
  p.protocols = httpProtocols();
  return p;
}

EntitySchema pluginsSchema() {
  EntitySchema s;
  s.name = "plugins";
  s.endpoint_key = "instance_name";
  s.fields = {idField(),
              timestampField("created_at"),
              timestampField("updated_at"),
              Field::string("name").req().lenMax(kMaxNameLength),
              utf8NameField("instance_name").isUnique(),
              Field::foreign("route", "routes").cascade(),
              Field::foreign("service", "services").cascade(),
              Field::foreign("consumer", "consumers").cascade(),
              Field::record("config", {}).req(),
              Field::set("protocols", Field::string("p").oneOf(allProtocols()))
                  .req()
                  .def(Json::array({"grpc", "grpcs", "http", "https"})),
              Field::boolean("enabled").req().def(true),
              tagsField(),
              // Dynamic ordering (Kong Enterprise's plugin_ordering): access-phase only.
              Field::record("ordering",
                            {Field::record("before", {Field::array("access", Field::string("a"))}),
                             Field::record("after", {Field::array("access", Field::string("a"))})})};
  s.unique_keys = {{{"consumer", "name", "route", "service"}, {}}};
  // The access order is fixed per route when chains are built; a consumer-scoped instance is
  // only chosen during the walk, too late to move it.
  EntityCheck ordering;
  ordering.fields = {"consumer", "ordering"};
  ordering.fn = [](const Json& e) -> std::string {
    const bool consumer = e.contains("consumer") && !e["consumer"].is_null();
    const bool ordered = e.contains("ordering") && !e["ordering"].is_null();
    return consumer && ordered ? "dynamic ordering is not supported on consumer-scoped plugins"
                               : "";
  };
  s.checks = {ordering};
  return s;
}

const PluginSchema* findPluginSchema(const std::string& name) {
  for (const auto& p : pluginSchemas()) {
    if (p.name == name) {
      return &p;
    }
  }
  return nullptr;
}

const EntitySchema& pluginEntitySchema(const PluginSchema& plugin) {
  static const auto* const kByName = [] {
    auto* m = new std::map<std::string, EntitySchema>();
    for (const auto& p : pluginSchemas()) {
      EntitySchema s = *findEntitySchema("plugins");
      for (auto& f : s.fields) {
        if (f.name == "config") {
          f = p.config;
        } else if (f.name == "consumer" && p.no_consumer) {
          f.must_be_null = true;
        } else if (f.name == "protocols") {
          f = Field::set("protocols", Field::string("p").oneOf(p.protocols))
                  .req()
                  .def(Json(p.default_protocols.empty() ? p.protocols : p.default_protocols));
        }
      }
      s.checks.insert(s.checks.end(), p.checks.begin(), p.checks.end());
      m->emplace(p.name, std::move(s));
    }
    return m;
  }();
  return kByName->at(plugin.name);
}

Json pluginSchemaToJson(const PluginSchema& plugin) {
  return schemaToJson(pluginEntitySchema(plugin));
}

}  // namespace portico::config
