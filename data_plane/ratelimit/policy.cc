#include "data_plane/ratelimit/policy.h"

#include <utility>

#include "common/logging.h"
#include "data_plane/ratelimit/local_counters.h"
#include "data_plane/ratelimit/windows.h"

namespace portico::dp::ratelimit {
namespace {

std::atomic<int64_t> g_last_log_s{0};

bool logNow() {
  const int64_t now = nowSeconds();
  int64_t last = g_last_log_s.load(std::memory_order_relaxed);
  return last != now && g_last_log_s.compare_exchange_strong(last, now);
}

}  // namespace

std::string scopeRouteId(const config::v1::Plugin& entity) {
  return entity.has_route() && !entity.route().id().empty() ? entity.route().id()
                                                            : std::string(kEmptyUuid);
}

std::string scopeServiceId(const config::v1::Plugin& entity) {
  return entity.has_service() && !entity.service().id().empty() ? entity.service().id()
                                                                : std::string(kEmptyUuid);
}

RedisOptions redisOptions(const config::Json& conf) {
  static const config::Json kNone;
  const config::Json& r = conf.contains("redis") ? conf["redis"] : kNone;
  auto str = [&r](const char* f) {
    return r.is_object() && r.contains(f) && r[f].is_string() ? r[f].get<std::string>()
                                                              : std::string();
  };
  auto num = [&r](const char* f, int64_t def) {
    return r.is_object() && r.contains(f) && r[f].is_number() ? r[f].get<int64_t>() : def;
  };
  RedisOptions o;
  o.host = str("host");
  o.port = static_cast<uint16_t>(num("port", 6379));
  o.timeout_ms = static_cast<uint32_t>(num("timeout", 2000));
  o.username = str("username");
  o.password = str("password");
  o.database = num("database", 0);
  auto flag = [&r](const char* f) {
    return r.is_object() && r.contains(f) && r[f].is_boolean() && r[f].get<bool>();
  };
  o.ssl = flag("ssl");
  o.ssl_verify = flag("ssl_verify");
  o.server_name = str("server_name");
  return o;
}

absl::StatusOr<RedisReplies> RedisCall::take() {
  if (!done.load(std::memory_order_acquire)) {
    return absl::DeadlineExceededError("redis: no answer in time");
  }
  return std::move(result);
}

std::shared_ptr<RedisCall> startRedisCall(RequestContext& ctx, RedisClient& client,
                                          std::string encoded, size_t count) {
  // The client answers within its timeout (connect, then the batch); the park deadline only
  // guards against a lost callback.
  const uint32_t timeout = client.options().timeout_ms == 0 ? 60000 : client.options().timeout_ms;
  WakerPtr waker = ctx.suspend(timeout * 2 + 1000);
  if (waker == nullptr) {
    return nullptr;
  }
  auto call = std::make_shared<RedisCall>();
  client.execute(std::move(encoded), count,
                 [call, waker = std::move(waker)](absl::StatusOr<RedisReplies> r) {
                   call->result = std::move(r);
                   call->done.store(true, std::memory_order_release);
                   waker->resume();
                 });
  return call;
}

absl::Status replyError(const RedisReply& reply) {
  if (reply.type == RedisReply::Type::kError) {
    return absl::UnavailableError("redis: " + reply.str);
  }
  return absl::OkStatus();
}

PolicyStats& policyStats() {
  static PolicyStats* const kStats = new PolicyStats();
  return *kStats;
}

void reportUsageFailure(std::string_view plugin, const absl::Status& status, bool passed) {
  policyStats().failures_total.fetch_add(1, std::memory_order_relaxed);
  if (passed) {
    policyStats().fault_tolerant_passes_total.fetch_add(1, std::memory_order_relaxed);
  }
  if (logNow()) {
    LOG_ERROR(plugin, "failed to get usage: %s%s", status.message(),
              passed ? " (fault_tolerant: request passed)" : "");
  }
}

void reportIncrementFailure(std::string_view plugin, const absl::Status& status) {
  policyStats().increment_failures_total.fetch_add(1, std::memory_order_relaxed);
  if (logNow()) {
    LOG_ERROR(plugin, "failed to increment counters: %s", status.message());
  }
}

void appendMetrics(metrics::Writer* w) {
  auto counter = [w](const char* name, const char* help, const std::atomic<uint64_t>& v) {
    w->counter(name, help, static_cast<double>(v.load(std::memory_order_relaxed)));
  };
  const PolicyStats& p = policyStats();
  counter("portico_dp_ratelimit_usage_failures_total",
          "Rate-limit usage that could not be read (Redis down, slow or refusing).",
          p.failures_total);
  counter("portico_dp_ratelimit_fault_tolerant_passes_total",
          "Requests passed unlimited because usage could not be read (fault_tolerant).",
          p.fault_tolerant_passes_total);
  counter("portico_dp_ratelimit_increment_failures_total",
          "response-ratelimiting increments Redis did not take.", p.increment_failures_total);
  w->counter("portico_dp_ratelimit_local_misses_total",
             "Local-policy counters that found no slot (table full): counted as 0.",
             static_cast<double>(LocalCounters::missesIfCreated()));
  const RedisStats& r = redisStats();
  counter("portico_dp_ratelimit_redis_batches_total", "Redis batches sent by the rate limiters.",
          r.batches_total);
  counter("portico_dp_ratelimit_redis_errors_total",
          "Redis batches that failed (no connection, timeout, connection lost).", r.errors_total);
  counter("portico_dp_ratelimit_redis_connects_total", "Redis connections established.",
          r.connects_total);
  counter("portico_dp_ratelimit_redis_connect_failures_total", "Redis connection attempts that failed.",
          r.connect_failures_total);
}

}  // namespace portico::dp::ratelimit
