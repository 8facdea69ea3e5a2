// response-ratelimiting's config schema (Kong 3.10, PRIORITY 900), as a hybrid-mode control
// plane has it (no `cluster` policy, as for rate-limiting).
#include "common/config/entities.h"
#include "data_plane/plugins/rate_limiting/redis_schema.h"

namespace portico::dp::plugins::response_ratelimiting {

config::PluginSchema schema() {
  using config::Field;
  using config::Json;
  using rate_limiting::positiveNumber;
  // One named limit: at least one period, longer periods not lower (Kong's validator and
  // entity check of the map's values; errors are reported at config.limits, as Kong does).
  Field limit =
      Field::record("limit", {positiveNumber("second"), positiveNumber("minute"),
                              positiveNumber("hour"), positiveNumber("day"),
                              positiveNumber("month"), positiveNumber("year")})
          .validator([](Json& v) -> std::string {
            bool any = false;
            for (const char* p : {"second", "minute", "hour", "day", "month", "year"}) {
              any = any || (v.contains(p) && v[p].is_number());
            }
            if (!any) {
              return "at least one of these fields must be non-empty: 'second', 'minute', "
                     "'hour', 'day', 'month', 'year'";
            }
            return rate_limiting::checkPeriodsOrder(v, "the");
          });
  std::vector<Field> fields = {
      Field::string("header_name").def("x-kong-limit"),
      Field::string("limit_by")
          .def("consumer")
          .oneOf(config::jsonList({"consumer", "credential", "ip"})),
      Field::string("policy").def("local").oneOf(config::jsonList({"local", "redis"})),
      Field::boolean("fault_tolerant").req().def(true),
      rate_limiting::redisRecord(),
      Field::boolean("block_on_first_violation").req().def(false),
      Field::boolean("hide_client_headers").req().def(false),
      Field::map("limits", Field::string("name"), limit).req().lenMin(1),
  };
  for (Field& f : rate_limiting::redisShorthandFields()) {
    fields.push_back(std::move(f));
  }
  config::PluginSchema p =
      config::httpPluginSchema("response-ratelimiting", 900, std::move(fields));
  p.config = p.config.validator([](Json& c) -> std::string {
    return rate_limiting::applyRedisShorthands(c);
  });
  p.checks = rate_limiting::redisRequiredChecks();
  return p;
}

}  // namespace portico::dp::plugins::response_ratelimiting
