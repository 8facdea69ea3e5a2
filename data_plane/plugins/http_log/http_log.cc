// http-log (Kong 3.10, PRIORITY 12): Kong's serialized request (logging/serializer.h) goes to a
// bounded queue and is sent from the log I/O thread (logging/sender.h) to http_endpoint, as one
// JSON object per request when queue.max_batch_size is 1, else as JSON arrays of up to
// max_batch_size entries gathered for at most max_coalescing_delay; a failed send (no
// connection, a timeout, a status of 300 or more) is retried with exponential backoff
// (initial_retry_delay doubling up to max_retry_delay) until max_retry_time, then dropped.
// The worker only serializes and queues: a full queue drops its oldest entry (Kong's queue),
// counted in portico_dp_http_log_dropped_total.
#include <openssl/evp.h>

#include <cmath>
#include <string>

#include "absl/status/statusor.h"
#include "common/config/schema.h"
#include "data_plane/plugins/logging/log_schema.h"
#include "data_plane/plugins/logging/sender.h"
#include "data_plane/plugins/logging/stream_log.h"
#include "data_plane/plugins/logging/serializer.h"
#include "data_plane/plugins/plugin_stats.h"

namespace portico::dp::plugins::http_log {
namespace {

PluginCounter g_dropped("portico_dp_http_log_dropped_total",
                        "Log entries http-log dropped because its queue was full "
                        "(queue.max_entries / max_bytes).");
PluginCounter g_failed("portico_dp_http_log_failed_total",
                       "Log entries http-log gave up on after retrying for "
                       "queue.max_retry_time.");
PluginCounter g_sent("portico_dp_http_log_sent_total", "Log entries http-log delivered.");

class Config final : public PluginConfig {
 public:
  std::shared_ptr<logging::Sender> sender;
  const uint64_t cache_serial = logging::newCacheSerial();

  std::string_view name() const override { return "http-log"; }
  int32_t priority() const override { return 12; }
  bool logsRequest() const override { return true; }
  PluginPtr createPlugin() const override;
};

class HttpLog final : public Plugin {
 public:
  explicit HttpLog(const Config& c) : config_(c) {}
  void onLog(const RequestContext& ctx) override {
    config_.sender->pushSerialized(
        [&](std::string* out) { logging::serialize(ctx, config_.cache_serial, out); });
  }

 private:
  const Config& config_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<HttpLog>(*this); }

std::string base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

double number(const config::Json& obj, const char* field, double def) {
  return obj.contains(field) && obj[field].is_number() ? obj[field].get<double>() : def;
}

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&,
                                                 const config::Json& conf) {
  if (conf.contains("custom_fields_by_lua") && conf["custom_fields_by_lua"].is_object() &&
      !conf["custom_fields_by_lua"].empty()) {
    return absl::InvalidArgumentError(std::string("custom_fields_by_lua: ") +
                                      logging::kLuaRefused);
  }
  logging::Url url;
  const std::string endpoint = conf.value("http_endpoint", std::string());
  if (std::string r = logging::parseUrl(endpoint, &url); !r.empty()) {
    return absl::InvalidArgumentError("http_endpoint: " + r);
  }
  logging::HttpTarget t;
  t.tls = url.scheme == "https";
  t.host = url.host;
  t.port = url.port;
  t.path = url.path;
  t.method = conf.value("method", std::string("POST"));
  t.content_type = conf.value("content_type", std::string("application/json"));
  if (!url.userinfo.empty()) {
    t.authorization = "Basic " + base64(url.userinfo);
  }
  if (conf.contains("headers") && conf["headers"].is_object()) {
    for (const auto& [name, value] : conf["headers"].items()) {
      if (value.is_string()) {
        t.headers[name] = value.get<std::string>();
      }
    }
  }
  absl::StatusOr<uint32_t> timeout = logging::millisField(conf, "timeout", 10000, 60000);
  if (!timeout.ok()) return timeout.status();
  t.timeout_ms = *timeout;
  absl::StatusOr<uint32_t> keepalive =
      logging::millisField(conf, "keepalive", 60000, logging::kNoIdleLimit);
  if (!keepalive.ok()) return keepalive.status();
  t.keepalive_ms = *keepalive;

  const config::Json q = conf.contains("queue") && conf["queue"].is_object() ? conf["queue"]
                                                                            : config::Json::object();
  logging::QueueOptions o;
  o.max_batch_size = static_cast<size_t>(number(q, "max_batch_size", 1));
  o.max_coalescing_delay_s = number(q, "max_coalescing_delay", 1);
  o.max_entries = static_cast<size_t>(number(q, "max_entries", 10000));
  const double max_bytes = number(q, "max_bytes", 0);
  if (max_bytes < 0) {
    return absl::InvalidArgumentError("queue.max_bytes: must be at least 0");
  }
  o.max_bytes = static_cast<size_t>(max_bytes);
  o.max_retry_time_s = number(q, "max_retry_time", 60);
  o.initial_retry_delay_s = number(q, "initial_retry_delay", 0.01);
  o.max_retry_delay_s = number(q, "max_retry_delay", 60);
  o.concurrency_limit = static_cast<int>(number(q, "concurrency_limit", 1));
  // Kong's Queue.get_plugin_params: the deprecated fields still apply when set to something
  // other than their old defaults.
  if (conf.contains("queue_size") && conf["queue_size"].is_number() &&
      conf["queue_size"].get<double>() != 1) {
    const double v = conf["queue_size"].get<double>();
    if (v < 1 || v > 1000000) {
      return absl::InvalidArgumentError("queue_size: value should be between 1 and 1000000");
    }
    o.max_batch_size = static_cast<size_t>(v);
  }
  if (conf.contains("flush_timeout") && conf["flush_timeout"].is_number() &&
      conf["flush_timeout"].get<double>() != 2) {
    const double v = conf["flush_timeout"].get<double>();
    if (v < 0 || v > 3600) {
      return absl::InvalidArgumentError("flush_timeout: value should be between 0 and 3600");
    }
    o.max_coalescing_delay_s = v;
  }
  if (o.max_entries == 0 || o.max_batch_size == 0) {
    return absl::InvalidArgumentError("queue: max_entries and max_batch_size must be at least 1");
  }

  // Instances with the same config share a queue and its connections (Kong shares a queue
  // between instances with the same endpoint and parameters).
  config::Json key = conf;
  key.erase("custom_fields_by_lua");
  const logging::Counters counters{&g_dropped, &g_failed, &g_sent};
  auto c = std::make_shared<Config>();
  c->sender = logging::Sender::http(key.dump(), t, o, counters);
  return c;
}

}  // namespace portico::dp::plugins::http_log
