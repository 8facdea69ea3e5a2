// request-size-limiting: refuses request bodies larger than a limit (Kong 3.10): by
// Content-Length before anything is forwarded, or while a chunked body streams in.
#include <string>

#include "common/config/schema.h"
#include "data_plane/plugins/request_util.h"

namespace portico::dp::plugins::request_size_limiting {
namespace {

constexpr std::string_view kTooLarge = "Request size limit exceeded";
constexpr std::string_view kLengthRequired = "A valid Content-Length header is required";

class Config final : public PluginConfig {
 public:
  uint64_t limit_bytes = 128ull * 1024 * 1024;
  bool require_content_length = false;

  std::string_view name() const override { return "request-size-limiting"; }
  int32_t priority() const override { return 951; }
  PluginPtr createPlugin() const override;
};

class RequestSizeLimiting final : public Plugin {
 public:
  explicit RequestSizeLimiting(const Config& config) : config_(config) {}

  // Interface
  PhaseResult onRequest(RequestContext& ctx) override {
    const http::RequestHead& head = ctx.requestHead();
    if (head.body == http::BodyKind::kContentLength) {
      if (head.content_length > config_.limit_bytes) {
        ctx.sendLocalReply(head.expect_continue ? 417 : 413, kTooLarge);
        return PhaseResult::kStop;
      }
      return PhaseResult::kContinue;
    }
    if (head.body == http::BodyKind::kChunked) {
      // Kong reads the body and measures it; the proxy streams it, so the limit is enforced
      // on the bytes as they pass (none past the limit reach the upstream).
      ctx.limitRequestBody(config_.limit_bytes);
      return PhaseResult::kContinue;
    }
    if (config_.require_content_length) {
      ctx.sendLocalReply(411, kLengthRequired);
      return PhaseResult::kStop;
    }
    return PhaseResult::kContinue;
  }

 private:
  const Config& config_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<RequestSizeLimiting>(*this); }

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&,
                                                 const config::Json& conf) {
  auto c = std::make_shared<Config>();
  const int64_t size = conf.value("allowed_payload_size", int64_t{128});
  const std::string unit = conf.value("size_unit", std::string("megabytes"));
  const uint64_t mult = unit == "bytes" ? 1 : unit == "kilobytes" ? 1024 : 1024 * 1024;
  if (size < 0 || static_cast<uint64_t>(size) > UINT64_MAX / mult) {
    return absl::InvalidArgumentError("allowed_payload_size out of range");
  }
  c->limit_bytes = static_cast<uint64_t>(size) * mult;
  c->require_content_length = conf.value("require_content_length", false);
  return c;
}

}  // namespace portico::dp::plugins::request_size_limiting
