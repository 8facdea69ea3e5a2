// udp-log's config schema (Kong 3.10, PRIORITY 8).
#include "common/config/entities.h"
#include "common/config/validate.h"
#include "data_plane/plugins/logging/log_schema.h"

namespace portico::dp::plugins::udp_log {

config::PluginSchema schema() {
  using config::Field;
  return logging::logPluginSchema(
      "udp-log", 8,
      {Field::string("host").req().validator(
           [](config::Json& v) { return config::checkHost(v.get<std::string>()); }),
       Field::integer("port").req().range(0, 65535), Field::number("timeout").def(10000),
       logging::luaCodeField()});
}

}  // namespace portico::dp::plugins::udp_log
