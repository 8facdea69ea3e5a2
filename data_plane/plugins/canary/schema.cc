// canary's config schema (Kong Enterprise's canary release, PRIORITY 20).
#include <chrono>
#include <string>

#include "common/config/entities.h"
#include "common/config/validate.h"

namespace portico::dp::plugins::canary {

namespace {

using config::Field;
using config::Json;

Field greaterThan(const std::string& name, double lo, double dflt) {
  return Field::number(name).def(dflt).validator([lo](Json& v) -> std::string {
    return v.get<double>() > lo ? "" : "value must be greater than " + std::to_string(static_cast<int>(lo));
  });
}

bool isSet(const Json& c, const char* field) {
  auto it = c.find(field);
  return it != c.end() && !it->is_null();
}

// The whole record, after its fields validated: Kong's validate_steps and its on_write
// transformation, which pins a timed release's start to the write's time when none is given
// (so the release advances from the moment it was configured, on every data plane alike).
std::string recordCheck(Json& c) {
  const std::string hash = c.value("hash", "consumer");
  const bool lists = hash == "allow" || hash == "deny";
  if (!isSet(c, "steps") && !isSet(c, "canary_by_header_name") && !lists) {
    return "config.steps must be a number greater than 1";
  }
  if (!isSet(c, "start") && !isSet(c, "percentage") && isSet(c, "duration") && !lists) {
    c["start"] = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  }
  return "";
}

// The path sent upstream as is: one token of visible ASCII, so it cannot break the request
// line (Kong leaves this to nginx; a space here would be a malformed upstream request).
std::string uriCheck(Json& v) {
  for (char ch : v.get<std::string>()) {
    if (ch <= 0x20 || ch >= 0x7f) {
      return "invalid value: " + v.get<std::string>();
    }
  }
  return "";
}

}  // namespace

config::PluginSchema schema() {
  config::PluginSchema p = config::httpPluginSchema(
      "canary", 20,
      {Field::number("start"),
       Field::string("hash").def("consumer").oneOf(
           config::jsonList({"consumer", "ip", "none", "allow", "deny", "header"})),
       config::headerNameField("hash_header"),
       greaterThan("duration", 0, 3600),
       greaterThan("steps", 1, 1000),
       Field::number("percentage").range(0, 100),
       Field::string("upstream_host").validator(
           [](Json& v) { return config::checkHost(v.get<std::string>()); }),
       Field::integer("upstream_port").range(0, 65535),
       Field::string("upstream_uri").lenMax(4096).validator(uriCheck),
       Field::boolean("upstream_fallback").req().def(false),
       Field::array("groups", Field::string("group")),
       config::headerNameField("canary_by_header_name")});
  p.config = p.config.validator(recordCheck);
  p.no_consumer = true;
  config::EntityCheck one;
  one.kind = config::EntityCheck::Kind::kAtLeastOneOf;
  one.fields = {"config.upstream_uri", "config.upstream_host", "config.upstream_port"};
  p.checks.push_back(one);
  config::EntityCheck header;
  header.kind = config::EntityCheck::Kind::kConditional;
  header.if_field = "config.hash";
  header.if_one_of = {Json("header")};
  header.then_field = "config.hash_header";
  p.checks.push_back(header);
  config::EntityCheck fallback;
  fallback.kind = config::EntityCheck::Kind::kConditional;
  fallback.if_field = "config.upstream_fallback";
  fallback.if_one_of = {Json(true)};
  fallback.then_field = "config.upstream_host";
  p.checks.push_back(fallback);
  return p;
}

}  // namespace portico::dp::plugins::canary
