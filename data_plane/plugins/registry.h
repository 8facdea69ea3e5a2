// The data plane's plugin registry: every bundled plugin's name and the function that builds
// its immutable config from a validated plugin entity. The list is builtin.inc; a plugin the
// registry does not know is never skipped: the snapshot that names it is refused (NACK).
#pragma once

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/schema.h"
#include "data_plane/plugins/plugin.h"

namespace portico::dp {

// Builds a plugin's config object. `config` is the entity's config record, already validated
// and normalized by the shared schema (defaults filled). Called on the config thread.
using PluginBuildFn = absl::StatusOr<PluginConfigConstSharedPtr> (*)(
    const config::v1::Plugin& entity, const config::Json& config);

struct PluginFactory {
  std::string_view name;
  int32_t priority = 0;
  PluginBuildFn build = nullptr;
};

// Sorted by name.
const std::vector<PluginFactory>& builtinPlugins();
const PluginFactory* findPluginFactory(std::string_view name);

}  // namespace portico::dp
