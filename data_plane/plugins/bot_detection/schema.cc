// bot-detection's config schema (Kong 3.10, PRIORITY 2500).
#include <re2/re2.h>

#include "common/config/entities.h"

namespace portico::dp::plugins::bot_detection {

config::PluginSchema schema() {
  using config::Field;
  using config::Json;
  const Field regex = Field::string("regex").validator([](Json& v) -> std::string {
    const std::string s = v.get<std::string>();
    RE2::Options options;
    options.set_log_errors(false);
    RE2 re(s, options);
    return re.ok() ? "" : "not a valid regex: " + s;
  });
  config::PluginSchema p = config::httpPluginSchema(
      "bot-detection", 2500,
      {Field::array("allow", regex).def(Json::array()),
       Field::array("deny", regex).def(Json::array())});
  p.no_consumer = true;
  return p;
}

}  // namespace portico::dp::plugins::bot_detection
