// file-log's config schema (Kong 3.10, PRIORITY 9).
#include <re2/re2.h>

#include "common/config/entities.h"
#include "data_plane/plugins/logging/log_schema.h"

namespace portico::dp::plugins::file_log {

config::PluginSchema schema() {
  using config::Field;
  return logging::logPluginSchema(
      "file-log", 9,
      {Field::string("path").req().validator([](config::Json& v) -> std::string {
         // Kong: ^[^%s*&%%\`][^*&%%\`]*[^%s*&%%\`]$
         static const re2::RE2 kPath("[^\\s*&%`][^*&%`]*[^\\s*&%`]");
         return re2::RE2::FullMatch(v.get<std::string>(), kPath) ? "" : "not a valid filename";
       }),
       Field::boolean("reopen").req().def(false), logging::luaCodeField()});
}

}  // namespace portico::dp::plugins::file_log
