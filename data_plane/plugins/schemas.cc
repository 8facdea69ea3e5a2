// The bundled plugins' config schemas, for the shared schema engine (common/config). Part of
// portico_plugin_schemas, which portico_config links: the CP validates plugin writes and the
// DP validates snapshots with exactly these.
#include <algorithm>

#include "common/config/entities.h"

namespace portico::dp::plugins {
#define PORTICO_PLUGIN(ns) \
  namespace ns {           \
  config::PluginSchema schema(); \
  }
#include "data_plane/plugins/builtin.inc"
#undef PORTICO_PLUGIN
}  // namespace portico::dp::plugins

namespace portico::config {

const std::vector<PluginSchema>& pluginSchemasInListOrder() {
  static const auto* const kList = new std::vector<PluginSchema>{
#define PORTICO_PLUGIN(ns) dp::plugins::ns::schema(),
#include "data_plane/plugins/builtin.inc"
#undef PORTICO_PLUGIN
  };
  return *kList;
}

const std::vector<PluginSchema>& pluginSchemas() {
  static const auto* const kSorted = [] {
    auto* out = new std::vector<PluginSchema>(pluginSchemasInListOrder());
    std::sort(out->begin(), out->end(),
              [](const PluginSchema& a, const PluginSchema& b) { return a.name < b.name; });
    return out;
  }();
  return *kSorted;
}

}  // namespace portico::config
