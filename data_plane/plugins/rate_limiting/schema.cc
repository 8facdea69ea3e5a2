// rate-limiting's config schema (Kong 3.10, PRIORITY 910), as a hybrid-mode control plane
// has it: the `cluster` policy needs a database on every node and is not offered (Kong's CP
// and DB-less nodes refuse it with the same "expected one of: local, redis").
#include "common/config/entities.h"
#include "common/config/validate.h"
#include "data_plane/plugins/rate_limiting/redis_schema.h"

namespace portico::dp::plugins::rate_limiting {

config::PluginSchema schema() {
  using config::Field;
  using config::Json;
  std::vector<Field> fields = {
      positiveNumber("second"),
      positiveNumber("minute"),
      positiveNumber("hour"),
      positiveNumber("day"),
      positiveNumber("month"),
      positiveNumber("year"),
      Field::string("limit_by")
          .def("consumer")
          .oneOf(config::jsonList({"consumer", "credential", "ip", "service", "header", "path"})),
      config::headerNameField("header_name"),
      Field::string("path").validator(
          [](Json& v) { return config::checkServicePath(v.get<std::string>()); }),
      Field::string("policy").def("local").lenMin(0).oneOf(config::jsonList({"local", "redis"})),
      Field::boolean("fault_tolerant").req().def(true),
      redisRecord(),
      Field::boolean("hide_client_headers").req().def(false),
      positiveNumber("error_code").def(429),
      Field::string("error_message").def("API rate limit exceeded"),
      Field::number("sync_rate").req().def(-1),
  };
  for (Field& f : redisShorthandFields()) {
    fields.push_back(std::move(f));
  }
  config::PluginSchema p = config::httpPluginSchema("rate-limiting", 910, std::move(fields));
  p.config = p.config.validator([](Json& c) -> std::string {
    if (std::string r = applyRedisShorthands(c); !r.empty()) {
      return r;
    }
    if (std::string r = checkPeriodsOrder(c, "The"); !r.empty()) {
      return r;
    }
    const std::string policy = c.value("policy", "local");
    const double sync_rate = c["sync_rate"].is_number() ? c["sync_rate"].get<double>() : -1;
    if (policy != "redis" && sync_rate != -1) {
      return "sync_rate can only be used with the redis policy";
    }
    if (policy == "redis" && sync_rate != -1 && sync_rate < 0.02) {
      return "sync_rate must be greater than 0.02, or -1 to disable";
    }
    if (policy == "redis" && sync_rate != -1) {
      // Kong's batched mode (count locally, flush every sync_rate seconds) is not
      // implemented: refused rather than silently counted another way.
      return "sync_rate: Portico's redis policy counts every request in Redis; only -1 is "
             "supported";
    }
    return "";
  });

  config::EntityCheck limits;
  limits.kind = config::EntityCheck::Kind::kAtLeastOneOf;
  limits.fields = {"config.second", "config.minute", "config.hour",
                   "config.day",    "config.month",  "config.year"};
  p.checks.push_back(limits);
  for (config::EntityCheck& c : redisRequiredChecks()) {
    p.checks.push_back(std::move(c));
  }
  for (const auto& [value, field] : {std::pair{"header", "config.header_name"},
                                     std::pair{"path", "config.path"}}) {
    config::EntityCheck c;
    c.kind = config::EntityCheck::Kind::kConditional;
    c.if_field = "config.limit_by";
    c.if_one_of = {Json(value)};
    c.then_field = field;
    p.checks.push_back(c);
  }
  return p;
}

}  // namespace portico::dp::plugins::rate_limiting
