// The config pieces rate-limiting and response-ratelimiting share in their schemas: Kong's
// `redis` record (kong/tools/redis/schema.lua), its deprecated `redis_*` shorthand fields,
// and the period-order check. Linked into portico_plugin_schemas (CP and DP).
#pragma once

#include <string>
#include <vector>

#include "common/config/schema.h"

namespace portico::dp::plugins::rate_limiting {

// `redis`: host, port (6379), timeout (2000), username, password, database (0), ssl, ssl_verify,
// server_name.
config::Field redisRecord();
// redis_host, redis_port, ... (Kong's shorthand_fields, deprecated but accepted).
std::vector<config::Field> redisShorthandFields();
// Moves the shorthand values given into `redis` and sets the shorthands to null (what is
// stored and shown is the `redis` record). Returns a reason when the result is invalid.
std::string applyRedisShorthands(config::Json& config);
// Kong's validate_periods_order: "<Prefix> limit for hour(10.0) cannot be lower than the
// limit for second(20.0)" (rate-limiting says "The", response-ratelimiting "the").
std::string checkPeriodsOrder(const config::Json& limits, const char* article);
// Entity checks "config.redis.host/port/timeout required when config.policy is redis".
std::vector<config::EntityCheck> redisRequiredChecks();
// A number field with Kong's `gt = 0`.
config::Field positiveNumber(const std::string& name);

}  // namespace portico::dp::plugins::rate_limiting
