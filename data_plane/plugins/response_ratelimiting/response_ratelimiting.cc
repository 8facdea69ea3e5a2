// response-ratelimiting (Kong 3.10, PRIORITY 900): named limits the upstream consumes through
// a response header (`X-Kong-Limit: video=1, image=2`). The access phase reads the usage of
// every named limit (the request is refused when block_on_first_violation finds one used up)
// and tells the upstream what is left (X-RateLimit-Remaining-<name>); the response-header
// phase adds X-RateLimit-Limit/Remaining-<name>-<period>, removes the upstream's header and
// turns the response into a 429 when the upstream consumed an exhausted limit; the log phase
// counts what the upstream asked for. Policies as rate-limiting's (local counters, or Redis
// with Kong's keys, the request parked while Redis answers).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data_plane/plugins/consumers.h"
#include "data_plane/ratelimit/local_counters.h"
#include "data_plane/ratelimit/policy.h"
#include "data_plane/ratelimit/redis_client.h"
#include "data_plane/ratelimit/windows.h"

namespace portico::dp::plugins::response_ratelimiting {
namespace {

using ratelimit::Period;

constexpr std::string_view kName = "response-ratelimiting";

// INCRBY with Kong's TTL when the key is new (Kong: EXISTS, then INCRBY and EXPIRE).
constexpr std::string_view kIncrementScript = R"(
        local key, value, expiration = KEYS[1], tonumber(ARGV[1]), ARGV[2]
        local result = redis.call("incrby", key, value)
        if result == value then
          redis.call("expire", key, expiration)
        end
        return result
      )";

enum class LimitBy : uint8_t { kConsumer, kCredential, kIp };

class Config final : public PluginConfig {
 public:
  struct PeriodLimit {
    Period period;
    double limit;
  };
  struct Limit {
    std::string name;
    std::vector<PeriodLimit> periods;  // configured, second first
    std::string upstream_header;   // X-RateLimit-Remaining-<name>
    std::array<std::string, ratelimit::kPeriods> limit_headers;      // ...-Limit-<name>-<period>
    std::array<std::string, ratelimit::kPeriods> remaining_headers;  // ...-Remaining-<name>-<p>
  };
  std::vector<Limit> limits;  // by name
  std::string header_name;
  LimitBy limit_by = LimitBy::kConsumer;
  bool fault_tolerant = true;
  bool block_on_first_violation = false;
  bool hide_client_headers = false;
  std::string route_id;
  std::string service_id;
  std::shared_ptr<ratelimit::RedisClient> redis;
  size_t usage_slots = 0;  // sum of periods over limits

  std::string_view name() const override { return kName; }
  int32_t priority() const override { return 900; }
  PluginPtr createPlugin() const override;

  const Limit* find(std::string_view name) const {
    for (const Limit& l : limits) {
      if (l.name == name) return &l;
    }
    return nullptr;
  }
};

// tonumber(s, 10) of Lua (LuaJIT scans it like a numeric literal: decimals, exponents, hex).
bool luaToNumber(std::string_view s, double* out) {
  if (s.empty()) return false;
  const std::string text(s);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

std::string_view strip(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

class ResponseRateLimiting final : public Plugin {
 public:
  explicit ResponseRateLimiting(const Config& config) : config_(config) {}

  // Interface
  PhaseResult onRequest(RequestContext& ctx) override {
    if (call_ != nullptr) {
      return finishRedis(ctx);
    }
    now_s_ = ratelimit::nowSeconds();
    identifier_.assign(identifierOf(ctx));
    const ratelimit::Timestamps ts = ratelimit::timestamps(now_s_);
    if (config_.redis != nullptr) {
      std::string batch;
      for (const Config::Limit& l : config_.limits) {
        for (const Config::PeriodLimit& p : l.periods) {
          ratelimit::appendRedisCommand({"GET", redisKey(l, p.period, ts)}, &batch);
        }
      }
      call_ = ratelimit::startRedisCall(ctx, *config_.redis, std::move(batch), config_.usage_slots);
      if (call_ == nullptr) {
        return failed(ctx, absl::InternalError("this request cannot wait for Redis"));
      }
      return PhaseResult::kWait;
    }
    used_.assign(config_.usage_slots, 0);
    ratelimit::LocalCounters::Scope scope(ratelimit::LocalCounters::instance());
    size_t i = 0;
    for (const Config::Limit& l : config_.limits) {
      for (const Config::PeriodLimit& p : l.periods) {
        int64_t v = 0;
        scope.get(p.period, ts[p.period], localKey(l, p.period, ts), &v);
        used_[i++] = static_cast<double>(v);
      }
    }
    return afterUsage(ctx);
  }

  void onResponseHeaders(RequestContext& ctx) override {
    increments_.assign(config_.limits.size(), std::nullopt);
    parseIncrements(ctx);
    if (!have_usage_) {
      return;
    }
    bool stop = false;
    size_t i = 0;
    std::string value;
    for (size_t li = 0; li < config_.limits.size(); ++li) {
      const Config::Limit& l = config_.limits[li];
      const double inc = increments_[li].value_or(0);
      for (const Config::PeriodLimit& p : l.periods) {
        const double remaining = p.limit - used_[i++];
        if (!config_.hide_client_headers) {
          const size_t pi = ratelimit::index(p.period);
          value.clear();
          ratelimit::appendLuaNumber(p.limit, &value);
          ctx.setResponseHeader(l.limit_headers[pi], value);
          value.clear();
          ratelimit::appendLuaNumber(std::max(0.0, remaining - inc), &value);
          ctx.setResponseHeader(l.remaining_headers[pi], value);
        }
        if (increments_[li] && *increments_[li] > 0 && remaining <= 0) {
          stop = true;
        }
      }
    }
    ctx.removeResponseHeader(config_.header_name);
    if (stop) {
      stop_log_ = true;
      ctx.setResponseStatus(429);  // Kong: kong.response.exit(429), the upstream body follows
    }
  }

  void onLog(const RequestContext&) override {
    if (stop_log_ || !have_usage_ || increments_.size() != config_.limits.size()) {
      return;  // blocked, no usage, or no response head (the client went away)
    }
    const ratelimit::Timestamps ts = ratelimit::timestamps(now_s_);
    std::string batch;
    size_t commands = 0;
    std::optional<ratelimit::LocalCounters::Scope> scope;
    for (size_t li = 0; li < config_.limits.size(); ++li) {
      if (!increments_[li] || *increments_[li] == 0) continue;
      const Config::Limit& l = config_.limits[li];
      // Counters are integers here; Kong's shared dict would keep a fraction.
      const int64_t inc = static_cast<int64_t>(*increments_[li]);
      // Every period, configured or not (Kong increments all six).
      for (int pi = 0; pi < ratelimit::kPeriods; ++pi) {
        const Period p = static_cast<Period>(pi);
        if (config_.redis != nullptr) {
          ratelimit::appendRedisCommand(
              {"EVAL", kIncrementScript, "1", redisKey(l, p, ts), std::to_string(inc),
               std::to_string(ratelimit::kExpirationS[static_cast<size_t>(pi)])},
              &batch);
          ++commands;
        } else {
          if (!scope) scope.emplace(ratelimit::LocalCounters::instance());
          int64_t ignored = 0;
          scope->add(p, ts[p], localKey(l, p, ts), inc, &ignored);
        }
      }
    }
    if (commands > 0) {
      // Fire and forget: the response is gone; a failure is counted and logged.
      config_.redis->execute(std::move(batch), commands,
                             [](absl::StatusOr<ratelimit::RedisReplies> r) {
                               absl::Status st = r.status();
                               if (st.ok()) {
                                 for (const ratelimit::RedisReply& reply : *r) {
                                   if (st = ratelimit::replyError(reply); !st.ok()) break;
                                 }
                               }
                               if (!st.ok()) ratelimit::reportIncrementFailure(kName, st);
                             });
    }
  }

 private:
  std::string_view identifierOf(const RequestContext& ctx) const {
    switch (config_.limit_by) {
      case LimitBy::kConsumer:
        if (ctx.consumer() != nullptr && ctx.consumer()->entity != nullptr) {
          return ctx.consumer()->entity->id();
        }
        if (!ctx.credentialId().empty()) return ctx.credentialId();
        break;
      case LimitBy::kCredential:
        if (!ctx.credentialId().empty()) return ctx.credentialId();
        break;
      case LimitBy::kIp:
        break;
    }
    return ctx.clientIp();
  }

  // response-ratelimit:<route>:<service>:<identifier>:<window start ms>:<name>:<period>
  std::string redisKey(const Config::Limit& l, Period p, const ratelimit::Timestamps& ts) const {
    return absl::StrCat("response-ratelimit:", config_.route_id, ":", config_.service_id, ":",
                        identifier_, ":", ts[p] * 1000, ":", l.name, ":",
                        std::string(ratelimit::kPeriodNames[ratelimit::index(p)]));
  }
  uint64_t localKey(const Config::Limit& l, Period p, const ratelimit::Timestamps& ts) const {
    return ratelimit::LocalCounters::key("response-ratelimit", config_.route_id,
                                         config_.service_id, identifier_, l.name, p, ts[p]);
  }

  PhaseResult finishRedis(RequestContext& ctx) {
    absl::StatusOr<ratelimit::RedisReplies> replies = call_->take();
    call_.reset();
    if (!replies.ok()) {
      return failed(ctx, replies.status());
    }
    used_.assign(config_.usage_slots, 0);
    for (size_t i = 0; i < config_.usage_slots; ++i) {
      const ratelimit::RedisReply& r = (*replies)[i];
      if (absl::Status st = ratelimit::replyError(r); !st.ok()) {
        return failed(ctx, st);
      }
      double v = 0;
      if (r.type == ratelimit::RedisReply::Type::kInteger) {
        v = static_cast<double>(r.integer);
      } else if (r.type == ratelimit::RedisReply::Type::kString) {
        luaToNumber(r.str, &v);
      }
      used_[i] = v;
    }
    return afterUsage(ctx);
  }

  PhaseResult failed(RequestContext& ctx, const absl::Status& st) {
    ratelimit::reportUsageFailure(kName, st, config_.fault_tolerant);
    if (!config_.fault_tolerant) {
      ctx.sendLocalReply(500, RequestContext::kUnexpected);
      return PhaseResult::kStop;
    }
    return PhaseResult::kContinue;  // no usage: no headers, nothing counted
  }

  // Kong's access.lua after get_usage: block_on_first_violation, then the upstream headers.
  PhaseResult afterUsage(RequestContext& ctx) {
    size_t i = 0;
    std::string value;
    for (const Config::Limit& l : config_.limits) {
      double min_remaining = 0;
      bool first = true;
      for (const Config::PeriodLimit& p : l.periods) {
        const double remaining = p.limit - used_[i++];
        if (config_.block_on_first_violation && remaining == 0) {
          ctx.sendLocalReply(429, "API rate limit exceeded for '" + l.name + "'");
          return PhaseResult::kStop;
        }
        if (first || remaining < min_remaining) {
          min_remaining = remaining;
          first = false;
        }
      }
      value.clear();
      ratelimit::appendLuaNumber(min_remaining, &value);
      ctx.setUpstreamHeader(l.upstream_header, value);
    }
    have_usage_ = true;
    return PhaseResult::kContinue;
  }

  // Kong's parse_header: "name=value" items, comma separated in one header, or one per header
  // when the upstream sent several; unknown names and non-numbers are ignored.
  void parseIncrements(const RequestContext& ctx) {
    std::vector<std::string_view> values;
    ctx.responseHeaderValues(config_.header_name, &values);
    auto item = [this](std::string_view part) {
      const size_t eq = part.find('=');
      if (eq == std::string_view::npos || part.find('=', eq + 1) != std::string_view::npos) {
        return;  // Kong wants exactly two parts
      }
      const std::string_view name = strip(part.substr(0, eq));
      for (size_t li = 0; li < config_.limits.size(); ++li) {
        if (config_.limits[li].name == name) {
          double v = 0;
          if (luaToNumber(strip(part.substr(eq + 1)), &v)) {
            increments_[li] = v;
          } else {
            increments_[li].reset();  // tonumber() gave nil
          }
        }
      }
    };
    if (values.size() == 1) {
      std::string_view v = values[0];
      for (;;) {
        const size_t comma = v.find(',');
        item(v.substr(0, comma));
        if (comma == std::string_view::npos) break;
        v.remove_prefix(comma + 1);
      }
    } else {
      for (std::string_view v : values) item(v);
    }
  }

  const Config& config_;
  int64_t now_s_ = 0;
  std::string identifier_;
  std::vector<double> used_;  // per (limit, period), in config order
  bool have_usage_ = false;
  bool stop_log_ = false;
  std::vector<std::optional<double>> increments_;  // per limit, from the upstream's header
  std::shared_ptr<ratelimit::RedisCall> call_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<ResponseRateLimiting>(*this); }

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin& entity,
                                                 const config::Json& conf) {
  auto c = std::make_shared<Config>();
  c->header_name = conf.value("header_name", "x-kong-limit");
  const std::string limit_by = conf.value("limit_by", "consumer");
  c->limit_by = limit_by == "credential" ? LimitBy::kCredential
                : limit_by == "ip"       ? LimitBy::kIp
                                         : LimitBy::kConsumer;
  c->fault_tolerant = conf.value("fault_tolerant", true);
  c->block_on_first_violation = conf.value("block_on_first_violation", false);
  c->hide_client_headers = conf.value("hide_client_headers", false);
  c->route_id = ratelimit::scopeRouteId(entity);
  c->service_id = ratelimit::scopeServiceId(entity);
  if (!conf.contains("limits") || !conf["limits"].is_object() || conf["limits"].empty()) {
    return absl::InvalidArgumentError("response-ratelimiting: no limits configured");
  }
  const config::Json& limits = conf["limits"];  // a local: no range-for over a temporary
  for (auto it = limits.begin(); it != limits.end(); ++it) {
    Config::Limit l;
    l.name = it.key();
    for (int p = 0; p < ratelimit::kPeriods; ++p) {
      const std::string field(ratelimit::kPeriodNames[static_cast<size_t>(p)]);
      if (it->is_object() && it->contains(field) && (*it)[field].is_number()) {
        l.periods.push_back({static_cast<Period>(p), (*it)[field].get<double>()});
      }
      l.limit_headers[static_cast<size_t>(p)] =
          absl::StrCat("X-RateLimit-Limit-", l.name, "-", field);
      l.remaining_headers[static_cast<size_t>(p)] =
          absl::StrCat("X-RateLimit-Remaining-", l.name, "-", field);
    }
    if (l.periods.empty()) {
      return absl::InvalidArgumentError("response-ratelimiting: limit '" + l.name +
                                        "' has no period");
    }
    l.upstream_header = "X-RateLimit-Remaining-" + l.name;
    c->usage_slots += l.periods.size();
    c->limits.push_back(std::move(l));
  }
  std::sort(c->limits.begin(), c->limits.end(),
            [](const Config::Limit& a, const Config::Limit& b) { return a.name < b.name; });
  const std::string policy = conf.value("policy", "local");
  if (policy == "redis") {
    c->redis = ratelimit::RedisClient::get(ratelimit::redisOptions(conf));
  } else if (policy != "local") {
    return absl::InvalidArgumentError("response-ratelimiting: policy '" + policy +
                                      "' is not supported by the data plane");
  }
  return c;
}

}  // namespace portico::dp::plugins::response_ratelimiting
