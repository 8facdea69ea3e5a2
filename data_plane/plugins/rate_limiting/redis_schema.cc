#include "data_plane/plugins/rate_limiting/redis_schema.h"

#include "absl/strings/str_format.h"

#include "common/config/entities.h"
#include "common/config/validate.h"

namespace portico::dp::plugins::rate_limiting {

using config::Field;
using config::Json;

namespace {

constexpr const char* kShorthands[] = {"host",     "port", "password",    "username", "ssl",
                                       "ssl_verify", "server_name", "timeout", "database"};

std::string hostCheck(Json& v) { return config::checkHost(v.get<std::string>()); }
std::string sniCheck(Json& v) { return config::checkSni(v.get<std::string>()); }

}  // namespace

Field positiveNumber(const std::string& name) {
  return Field::number(name).validator([](Json& v) -> std::string {
    return v.get<double>() > 0 ? "" : "value must be greater than 0";
  });
}

Field redisRecord() {
  return Field::record(
             "redis",
             {Field::string("host").validator(hostCheck),
              Field::integer("port").def(6379).range(0, 65535),
              Field::integer("timeout").def(2000).range(0, 2147483646),
              Field::string("username"), Field::string("password").lenMin(0),
              Field::integer("database").def(0), Field::boolean("ssl").def(false),
              Field::boolean("ssl_verify").def(false),
              Field::string("server_name").validator(sniCheck)})
      .req();
}

std::vector<Field> redisShorthandFields() {
  return {Field::string("redis_host"),       Field::integer("redis_port"),
          Field::string("redis_password").lenMin(0), Field::string("redis_username"),
          Field::boolean("redis_ssl"),       Field::boolean("redis_ssl_verify"),
          Field::string("redis_server_name"), Field::integer("redis_timeout"),
          Field::integer("redis_database")};
}

std::string applyRedisShorthands(Json& config) {
  if (!config.contains("redis") || !config["redis"].is_object()) {
    config["redis"] = Json::object();
  }
  Json& redis = config["redis"];
  for (const char* name : kShorthands) {
    const std::string legacy = std::string("redis_") + name;
    if (config.contains(legacy) && !config[legacy].is_null()) {
      redis[name] = config[legacy];
    }
    config[legacy] = nullptr;
  }
  // What the redis record would have refused (the shorthands skip its validators).
  if (redis.contains("host") && redis["host"].is_string()) {
    if (std::string r = config::checkHost(redis["host"].get<std::string>()); !r.empty()) {
      return "redis.host: " + r;
    }
  }
  if (redis.contains("port") && redis["port"].is_number() &&
      (redis["port"].get<double>() < 0 || redis["port"].get<double>() > 65535)) {
    return "redis.port: value should be between 0 and 65535";
  }
  if (redis.contains("timeout") && redis["timeout"].is_number() &&
      (redis["timeout"].get<double>() < 0 || redis["timeout"].get<double>() > 2147483646)) {
    return "redis.timeout: value should be between 0 and 2147483646";
  }
  return "";
}

std::string checkPeriodsOrder(const Json& limits, const char* article) {
  static const char* const kOrdered[] = {"second", "minute", "hour", "day", "month", "year"};
  for (size_t i = 0; i < 6; ++i) {
    if (!limits.contains(kOrdered[i]) || !limits[kOrdered[i]].is_number()) continue;
    const double lower = limits[kOrdered[i]].get<double>();
    for (size_t j = i + 1; j < 6; ++j) {
      if (!limits.contains(kOrdered[j]) || !limits[kOrdered[j]].is_number()) continue;
      const double upper = limits[kOrdered[j]].get<double>();
      if (upper < lower) {
        return absl::StrFormat("%s limit for %s(%.1f) cannot be lower than the limit for %s(%.1f)",
                               article, kOrdered[j], upper, kOrdered[i], lower);
      }
    }
  }
  return "";
}

std::vector<config::EntityCheck> redisRequiredChecks() {
  std::vector<config::EntityCheck> out;
  for (const char* f : {"config.redis.host", "config.redis.port", "config.redis.timeout"}) {
    config::EntityCheck c;
    c.kind = config::EntityCheck::Kind::kConditional;
    c.if_field = "config.policy";
    c.if_one_of = {Json("redis")};
    c.then_field = f;
    out.push_back(c);
  }
  return out;
}

}  // namespace portico::dp::plugins::rate_limiting
