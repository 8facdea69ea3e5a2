// rate-limiting (Kong 3.10, PRIORITY 910): fixed calendar windows from second to year per
// consumer, credential, IP, service, header or path; the `local` policy counts in the DP
// process (data_plane/ratelimit/local_counters.h), the `redis` policy in a shared Redis with
// Kong's keys and script, without blocking the worker (the request is parked while Redis
// answers). Headers, 429 and fault tolerance as Kong's handler.lua.
#include <array>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/config/validate.h"
#include "data_plane/plugins/consumers.h"
#include "data_plane/plugins/registry.h"
#include "data_plane/ratelimit/local_counters.h"
#include "data_plane/ratelimit/policy.h"
#include "data_plane/ratelimit/redis_client.h"
#include "data_plane/ratelimit/windows.h"

namespace portico::dp::plugins::rate_limiting {
namespace {

using ratelimit::Period;

constexpr std::string_view kName = "rate-limiting";

// Kong's Redis usage script (policies/init.lua): count this request, set the key's TTL when it
// is new, answer the count before it. Same text and keys as Kong, so Kong nodes and Portico
// DPs on one Redis share their counters.
constexpr std::string_view kUsageScript = R"(
        local cache_key, expiration = KEYS[1], ARGV[1]
        local result_incr = redis.call("incr", cache_key)
        if result_incr == 1 then
          redis.call("expire", cache_key, expiration)
        end

        return result_incr - 1
      )";

enum class LimitBy : uint8_t { kConsumer, kCredential, kIp, kService, kHeader, kPath };

// The response headers, by period (Kong's X_RATELIMIT_LIMIT / X_RATELIMIT_REMAINING).
constexpr std::array<std::string_view, ratelimit::kPeriods> kLimitHeaders = {
    "X-RateLimit-Limit-Second", "X-RateLimit-Limit-Minute", "X-RateLimit-Limit-Hour",
    "X-RateLimit-Limit-Day",    "X-RateLimit-Limit-Month",  "X-RateLimit-Limit-Year"};
constexpr std::array<std::string_view, ratelimit::kPeriods> kRemainingHeaders = {
    "X-RateLimit-Remaining-Second", "X-RateLimit-Remaining-Minute",
    "X-RateLimit-Remaining-Hour",   "X-RateLimit-Remaining-Day",
    "X-RateLimit-Remaining-Month",  "X-RateLimit-Remaining-Year"};

class Config final : public PluginConfig {
 public:
  struct Limit {
    Period period;
    double limit;
  };
  std::vector<Limit> limits;  // the configured periods, second first
  LimitBy limit_by = LimitBy::kConsumer;
  std::string header_name;
  std::string path;
  bool fault_tolerant = true;
  bool hide_client_headers = false;
  int error_code = 429;
  std::string error_message;
  std::string route_id;    // the plugin's scope, for counter keys (Kong: conf.route_id)
  std::string service_id;
  std::shared_ptr<ratelimit::RedisClient> redis;  // null: the local policy

  std::string_view name() const override { return kName; }
  int32_t priority() const override { return 910; }
  PluginPtr createPlugin() const override;
};

struct Usage {
  double limit = 0;
  double remaining = 0;  // limit - usage before this request
};

class RateLimiting final : public Plugin {
 public:
  explicit RateLimiting(const Config& config) : config_(config) {}

  // Interface
  PhaseResult onRequest(RequestContext& ctx) override {
    if (call_ != nullptr) {
      return finishRedis(ctx);  // resumed: Redis answered (or the deadline passed)
    }
    now_s_ = ratelimit::nowSeconds();
    const ratelimit::Timestamps ts = ratelimit::timestamps(now_s_);
    std::string path_storage;
    const std::string_view identifier = identifierOf(ctx, &path_storage);
    if (config_.redis != nullptr) {
      return startRedis(ctx, ts, identifier);
    }
    // Local: count first, then take the request back out if it is blocked: concurrent requests
    // on all workers never pass beyond the limit, and a blocked request counts for nothing
    // (Kong increments only requests that pass).
    std::array<Usage, ratelimit::kPeriods> usage{};
    std::array<uint64_t, ratelimit::kPeriods> keys{};
    int stop = -1;
    ratelimit::LocalCounters::Scope scope(ratelimit::LocalCounters::instance());
    for (size_t i = 0; i < config_.limits.size(); ++i) {
      const Config::Limit& l = config_.limits[i];
      keys[i] = ratelimit::LocalCounters::key("ratelimit", config_.route_id, config_.service_id,
                                              identifier, "", l.period, ts[l.period]);
      int64_t before = 0;
      scope.add(l.period, ts[l.period], keys[i], 1, &before);
      usage[i] = Usage{l.limit, l.limit - static_cast<double>(before)};
      if (usage[i].remaining <= 0) {
        stop = static_cast<int>(i);
      }
    }
    if (stop >= 0) {
      for (size_t i = 0; i < config_.limits.size(); ++i) {
        int64_t ignored = 0;
        scope.add(config_.limits[i].period, ts[config_.limits[i].period], keys[i], -1, &ignored);
      }
    }
    return decide(ctx, ts, usage, stop);
  }

 private:
  std::string_view identifierOf(const RequestContext& ctx, std::string* storage) const {
    switch (config_.limit_by) {
      case LimitBy::kService:
        if (ctx.service() != nullptr) return ctx.service()->id();
        break;
      case LimitBy::kConsumer:
        if (ctx.consumer() != nullptr && ctx.consumer()->entity != nullptr) {
          return ctx.consumer()->entity->id();
        }
        if (!ctx.credentialId().empty()) return ctx.credentialId();
        break;
      case LimitBy::kCredential:
        if (!ctx.credentialId().empty()) return ctx.credentialId();
        break;
      case LimitBy::kHeader: {
        std::string_view v;
        if (ctx.requestHeader(config_.header_name, &v)) return v;  // "" counts (Lua truthy)
        break;
      }
      case LimitBy::kPath:
        // kong.request.get_path(): the normalized path.
        *storage = config::normalizePath(std::string(ctx.path()));
        if (*storage == config_.path) return *storage;
        break;
      case LimitBy::kIp:
        break;
    }
    return ctx.clientIp();  // kong.client.get_forwarded_ip()
  }

  PhaseResult startRedis(RequestContext& ctx, const ratelimit::Timestamps& ts,
                         std::string_view identifier) {
    std::string batch;
    for (const Config::Limit& l : config_.limits) {
      // ratelimit:<route>:<service>:<identifier>:<window start in ms>:<period>
      const std::string key =
          absl::StrCat("ratelimit:", config_.route_id, ":", config_.service_id, ":",
                       std::string(identifier), ":", ts[l.period] * 1000, ":",
                       std::string(ratelimit::kPeriodNames[ratelimit::index(l.period)]));
      const std::string ttl =
          std::to_string(ratelimit::kExpirationS[ratelimit::index(l.period)]);
      ratelimit::appendRedisCommand({"EVAL", kUsageScript, "1", key, ttl}, &batch);
    }
    call_ = ratelimit::startRedisCall(ctx, *config_.redis, std::move(batch), config_.limits.size());
    if (call_ == nullptr) {
      return failed(ctx, absl::InternalError("this request cannot wait for Redis"));
    }
    return PhaseResult::kWait;
  }

  PhaseResult finishRedis(RequestContext& ctx) {
    absl::StatusOr<ratelimit::RedisReplies> replies = call_->take();
    call_.reset();
    if (!replies.ok()) {
      return failed(ctx, replies.status());
    }
    std::array<Usage, ratelimit::kPeriods> usage{};
    int stop = -1;
    for (size_t i = 0; i < config_.limits.size(); ++i) {
      const ratelimit::RedisReply& r = (*replies)[i];
      if (absl::Status st = ratelimit::replyError(r); !st.ok()) {
        return failed(ctx, st);
      }
      const double used = r.type == ratelimit::RedisReply::Type::kInteger
                              ? static_cast<double>(r.integer)
                              : 0;  // Kong: a nil answer counts as 0
      usage[i] = Usage{config_.limits[i].limit, config_.limits[i].limit - used};
      if (usage[i].remaining <= 0) {
        stop = static_cast<int>(i);
      }
    }
    return decide(ctx, ratelimit::timestamps(now_s_), usage, stop);
  }

  // Usage could not be read (Redis down, slow or refusing): Kong's fault_tolerant.
  PhaseResult failed(RequestContext& ctx, const absl::Status& st) {
    ratelimit::reportUsageFailure(kName, st, config_.fault_tolerant);
    if (!config_.fault_tolerant) {
      ctx.sendLocalReply(500, RequestContext::kUnexpected);  // Kong: error(err)
      return PhaseResult::kStop;
    }
    return PhaseResult::kContinue;  // no headers, nothing counted
  }

  // Kong's access(): headers for every period, RateLimit-* for the one with the fewest
  // remaining (ties: the longer window), and the error when a period is exhausted.
  PhaseResult decide(RequestContext& ctx, const ratelimit::Timestamps& ts,
                     const std::array<Usage, ratelimit::kPeriods>& usage, int stop) {
    int64_t reset = 0;
    if (!config_.hide_client_headers) {
      bool have = false;
      double best_limit = 0;
      double best_remaining = 0;
      int64_t best_window = 0;
      std::string value;
      for (size_t i = 0; i < config_.limits.size(); ++i) {
        const size_t p = ratelimit::index(config_.limits[i].period);
        double remaining = usage[i].remaining;
        if (stop < 0 || stop == static_cast<int>(i)) {
          remaining -= 1;
        }
        remaining = std::max(0.0, remaining);
        const int64_t window = ratelimit::kExpirationS[p];
        if (!have || remaining < best_remaining ||
            (remaining == best_remaining && window > best_window)) {
          have = true;
          best_limit = usage[i].limit;
          best_remaining = remaining;
          best_window = window;
          reset = std::max<int64_t>(1, window - (now_s_ - ts.start_s[p]));
        }
        value.clear();
        ratelimit::appendLuaNumber(usage[i].limit, &value);
        ctx.setResponseHeader(kLimitHeaders[p], value);
        value.clear();
        ratelimit::appendLuaNumber(remaining, &value);
        ctx.setResponseHeader(kRemainingHeaders[p], value);
      }
      value.clear();
      ratelimit::appendLuaNumber(best_limit, &value);
      ctx.setResponseHeader("RateLimit-Limit", value);
      value.clear();
      ratelimit::appendLuaNumber(best_remaining, &value);
      ctx.setResponseHeader("RateLimit-Remaining", value);
      ctx.setResponseHeader("RateLimit-Reset", std::to_string(reset));
    }
    if (stop < 0) {
      return PhaseResult::kContinue;
    }
    if (!config_.hide_client_headers) {
      ctx.setResponseHeader("Retry-After", std::to_string(reset));
    }
    // kong.response.error() takes 400-599 only; anything else is an error of its own (500).
    if (config_.error_code < 400 || config_.error_code > 599) {
      ctx.sendLocalReply(500, RequestContext::kUnexpected);
    } else {
      ctx.sendLocalReply(config_.error_code, config_.error_message);
    }
    return PhaseResult::kStop;
  }

  const Config& config_;
  int64_t now_s_ = 0;
  std::shared_ptr<ratelimit::RedisCall> call_;  // the Redis batch of a parked request
};

PluginPtr Config::createPlugin() const { return std::make_unique<RateLimiting>(*this); }

LimitBy parseLimitBy(const std::string& s) {
  if (s == "credential") return LimitBy::kCredential;
  if (s == "ip") return LimitBy::kIp;
  if (s == "service") return LimitBy::kService;
  if (s == "header") return LimitBy::kHeader;
  if (s == "path") return LimitBy::kPath;
  return LimitBy::kConsumer;
}

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin& entity,
                                                 const config::Json& conf) {
  auto c = std::make_shared<Config>();
  for (int p = 0; p < ratelimit::kPeriods; ++p) {
    const std::string field(ratelimit::kPeriodNames[static_cast<size_t>(p)]);
    if (conf.contains(field) && conf[field].is_number()) {
      c->limits.push_back({static_cast<Period>(p), conf[field].get<double>()});
    }
  }
  if (c->limits.empty()) {
    return absl::InvalidArgumentError("rate-limiting: no limit configured");
  }
  c->limit_by = parseLimitBy(conf.value("limit_by", "consumer"));
  if (conf.contains("header_name") && conf["header_name"].is_string()) {
    c->header_name = conf["header_name"].get<std::string>();
  }
  if (conf.contains("path") && conf["path"].is_string()) {
    c->path = conf["path"].get<std::string>();
  }
  c->fault_tolerant = conf.value("fault_tolerant", true);
  c->hide_client_headers = conf.value("hide_client_headers", false);
  c->error_code = conf.contains("error_code") && conf["error_code"].is_number()
                      ? static_cast<int>(conf["error_code"].get<double>())
                      : 429;
  c->error_message = conf.contains("error_message") && conf["error_message"].is_string()
                         ? conf["error_message"].get<std::string>()
                         : std::string("API rate limit exceeded");
  c->route_id = ratelimit::scopeRouteId(entity);
  c->service_id = ratelimit::scopeServiceId(entity);
  const std::string policy = conf.value("policy", "local");
  if (policy == "redis") {
    c->redis = ratelimit::RedisClient::get(ratelimit::redisOptions(conf));
  } else if (policy != "local") {
    return absl::InvalidArgumentError("rate-limiting: policy '" + policy +
                                      "' is not supported by the data plane");
  }
  return c;
}

}  // namespace portico::dp::plugins::rate_limiting
