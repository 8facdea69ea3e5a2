// correlation-id: gives every request an id in a header (Kong 3.10): an incoming non-blank
// value is kept, otherwise one is generated (uuid, uuid#counter or tracker) and sent
// upstream; with echo_downstream it is also set on the response, local replies included.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "common/config/schema.h"
#include "data_plane/plugins/request_util.h"

namespace portico::dp::plugins::correlation_id {
namespace {

enum class Generator : uint8_t { kUuid, kUuidCounter, kTracker };

// A random (version 4) UUID from a per-thread generator: no lock on the proxy worker.
std::string uuidV4() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const uint64_t hi = (rng() & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  const uint64_t lo = (rng() & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  char buf[37];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32), static_cast<unsigned>((hi >> 16) & 0xffff),
                static_cast<unsigned>(hi & 0xffff), static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

class Config final : public PluginConfig {
 public:
  std::string header_name = "Kong-Request-ID";
  Generator generator = Generator::kUuidCounter;
  bool echo_downstream = false;

  std::string_view name() const override { return "correlation-id"; }
  int32_t priority() const override { return 100001; }
  PluginPtr createPlugin() const override;

  std::string generate(const RequestContext& ctx) const {
    switch (generator) {
      case Generator::kUuid:
        return uuidV4();
      case Generator::kUuidCounter: {
        // Kong: one uuid per worker, then "#<n>" counting that worker's requests from 1.
        thread_local const std::string worker_uuid = uuidV4();
        thread_local uint64_t counter = 0;
        return worker_uuid + "#" + std::to_string(++counter);
      }
      case Generator::kTracker: {
        const auto now = std::chrono::duration<double>(
            std::chrono::system_clock::now().time_since_epoch());
        char when[32];
        std::snprintf(when, sizeof(when), "%.3f", now.count());
        return std::string(ctx.serverAddress()) + "-" + std::to_string(ctx.serverPort()) + "-" +
               std::to_string(::getpid()) + "-" + std::to_string(ctx.connectionSerial()) + "-" +
               std::to_string(ctx.connectionRequests()) + "-" + when;
      }
    }
    return uuidV4();
  }
};

bool blank(std::string_view v) { return v.find_first_not_of(" \t") == std::string_view::npos; }

class CorrelationId final : public Plugin {
 public:
  explicit CorrelationId(const Config& config) : config_(config) {}

  // Interface
  PhaseResult onRequest(RequestContext& ctx) override {
    id_ = current(ctx);
    ctx.setUpstreamHeader(config_.header_name, id_);
    ctx.shared()["correlation_id"] = id_;  // Kong's log serializer field
    return PhaseResult::kContinue;
  }

  void onResponseHeaders(RequestContext& ctx) override {
    if (!config_.echo_downstream) {
      return;
    }
    if (id_.empty()) {
      id_ = current(ctx);  // access did not run (no route matched): as Kong, take or make one
    }
    ctx.setResponseHeader(config_.header_name, id_);
  }

 private:
  std::string current(const RequestContext& ctx) const {
    std::string_view incoming;
    if (ctx.requestHeader(config_.header_name, &incoming) && !blank(incoming)) {
      return std::string(incoming);
    }
    return config_.generate(ctx);
  }

  const Config& config_;
  std::string id_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<CorrelationId>(*this); }

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&,
                                                 const config::Json& conf) {
  auto c = std::make_shared<Config>();
  if (conf.contains("header_name") && conf["header_name"].is_string()) {
    c->header_name = conf["header_name"].get<std::string>();
  }
  if (c->header_name.empty()) {
    return absl::InvalidArgumentError("header_name: must not be empty");
  }
  const std::string gen = conf.value("generator", std::string("uuid#counter"));
  c->generator = gen == "uuid"      ? Generator::kUuid
                 : gen == "tracker" ? Generator::kTracker
                                    : Generator::kUuidCounter;
  c->echo_downstream = conf.value("echo_downstream", false);
  return c;
}

}  // namespace portico::dp::plugins::correlation_id
