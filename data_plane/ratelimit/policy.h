// What the rate-limiting and response-ratelimiting plugins share on the request path: Kong's
// counter-key parts, the hand-over of a Redis answer to a parked request, and how a failed
// policy (Redis down or slow) is counted and logged.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/config/schema.h"
#include "common/metrics/metrics.h"
#include "data_plane/plugins/plugin.h"
#include "data_plane/ratelimit/redis_client.h"

namespace portico::dp::ratelimit {

// Kong's stand-in for a plugin without a route or service in its counter keys.
inline constexpr std::string_view kEmptyUuid = "00000000-0000-0000-0000-000000000000";

// The plugin entity's route and service ids for counter keys (kEmptyUuid when unscoped).
std::string scopeRouteId(const config::v1::Plugin& entity);
std::string scopeServiceId(const config::v1::Plugin& entity);

// The client options of a validated config's `redis` record (both plugins have Kong's).
RedisOptions redisOptions(const config::Json& conf);

// A Redis batch of a parked request. The Redis thread writes `result`, then sets `done`
// (release) and resumes the request; the resumed plugin reads `done` (acquire) first: false
// means the request's deadline passed without an answer.
struct RedisCall {
  std::atomic<bool> done{false};
  absl::StatusOr<RedisReplies> result{absl::UnknownError("no answer")};
  // The answer, or the reason there is none.
  absl::StatusOr<RedisReplies> take();
};

// Sends the batch and parks the request (the caller returns PhaseResult::kWait). Null when
// `ctx` cannot park a request: the caller treats it as a failed policy.
std::shared_ptr<RedisCall> startRedisCall(RequestContext& ctx, RedisClient& client,
                                          std::string encoded, size_t count);

// A reply that is a Redis error, or not an integer when one was expected: an error status.
absl::Status replyError(const RedisReply& reply);

struct PolicyStats {
  std::atomic<uint64_t> failures_total{0};           // usage could not be read
  std::atomic<uint64_t> fault_tolerant_passes_total{0};  // ... and the request passed
  std::atomic<uint64_t> increment_failures_total{0};     // response-ratelimiting's log phase
};
PolicyStats& policyStats();

// Counts a failure to read usage and logs it (at most once a second per process, so a Redis
// outage under load does not flood the log).
void reportUsageFailure(std::string_view plugin, const absl::Status& status, bool passed);
void reportIncrementFailure(std::string_view plugin, const absl::Status& status);

// The portico_dp_ratelimit_* families for the DP's /metrics (status listener).
void appendMetrics(metrics::Writer* w);

}  // namespace portico::dp::ratelimit
