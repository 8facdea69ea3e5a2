#include "common/config/entities/entity_schemas.h"

#include "common/config/typedefs.h"

namespace portico::config {
namespace {

// Kong's targets: host[:port] (IPv6 in brackets), port defaulting to 8000.
std::string targetCheck(Json& v) {
  const std::string target = v.get<std::string>();
  if (std::string too_long = checkHostLength(target, true); !too_long.empty()) {
    return too_long;
  }
  bool has_port = false;
  const std::string kind = classifyHost(target, &has_port);
  if (kind.empty()) {
    return "Invalid target ('" + target + "'); not a valid hostname or ip address";
  }
  if (!has_port) {
    v = kind == "ipv6" && target.front() != '[' ? "[" + target + "]:8000" : target + ":8000";
  }
  return "";
}

}  // namespace

EntitySchema targetsSchema() {
  EntitySchema s;
  s.name = "targets";
  s.endpoint_key = "target";
  s.float_timestamps = true;
  s.fields = {idField(),
              timestampField("created_at", true),
              timestampField("updated_at", true),
              Field::foreign("upstream", "upstreams").req().cascade(),
              Field::string("target").req().validator(targetCheck),
              Field::integer("weight").def(100).range(0, 65535),
              tagsField()};
  s.unique_keys = {{{"target"}, {"upstream"}}};
  return s;
}

}  // namespace portico::config
