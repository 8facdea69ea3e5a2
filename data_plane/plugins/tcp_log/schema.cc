// tcp-log's config schema (Kong 3.10, PRIORITY 7).
#include "common/config/entities.h"
#include "common/config/validate.h"
#include "data_plane/plugins/logging/log_schema.h"

namespace portico::dp::plugins::tcp_log {

config::PluginSchema schema() {
  using config::Field;
  return logging::logPluginSchema(
      "tcp-log", 7,
      {Field::string("host").req().validator(
           [](config::Json& v) { return config::checkHost(v.get<std::string>()); }),
       Field::integer("port").req().range(0, 65535), Field::number("timeout").def(10000),
       Field::number("keepalive").def(60000), Field::boolean("tls").req().def(false),
       Field::string("tls_sni"), logging::luaCodeField()});
}

}  // namespace portico::dp::plugins::tcp_log
