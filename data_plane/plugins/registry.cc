#include "data_plane/plugins/registry.h"

#include <algorithm>

#include "common/config/entities.h"

namespace portico::dp {

#define PORTICO_PLUGIN(ns)                                                                  \
  namespace plugins::ns {                                                                   \
  absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin& entity,        \
                                                   const config::Json& config);             \
  }
#include "data_plane/plugins/builtin.inc"
#undef PORTICO_PLUGIN

namespace {

struct NamedBuild {
  PluginBuildFn build;
};

}  // namespace

const std::vector<PluginFactory>& builtinPlugins() {
  static const auto* const kPlugins = [] {
    // The schemas list (schemas.cc) comes from the same builtin.inc, in the same order.
    const NamedBuild builds[] = {
#define PORTICO_PLUGIN(ns) {&plugins::ns::build},
#include "data_plane/plugins/builtin.inc"
#undef PORTICO_PLUGIN
    };
    const std::vector<config::PluginSchema>& schemas = config::pluginSchemasInListOrder();
    auto* out = new std::vector<PluginFactory>();
    for (size_t i = 0; i < schemas.size() && i < std::size(builds); ++i) {
      out->push_back({schemas[i].name, schemas[i].priority, builds[i].build});
    }
    std::sort(out->begin(), out->end(),
              [](const PluginFactory& a, const PluginFactory& b) { return a.name < b.name; });
    return out;
  }();
  return *kPlugins;
}

const PluginFactory* findPluginFactory(std::string_view name) {
  const std::vector<PluginFactory>& all = builtinPlugins();
  auto it = std::lower_bound(all.begin(), all.end(), name,
                             [](const PluginFactory& f, std::string_view n) { return f.name < n; });
  return it != all.end() && it->name == name ? &*it : nullptr;
}

}  // namespace portico::dp
