#include "data_plane/plugins/logging/stream_log.h"

#include <cmath>
#include <string>

#include "data_plane/plugins/logging/log_schema.h"
#include "data_plane/plugins/logging/serializer.h"

namespace portico::dp::plugins::logging {
namespace {

class Config final : public PluginConfig {
 public:
  Config(std::string_view name, int32_t priority) : name_(name), priority_(priority) {}
  std::shared_ptr<Sender> sender;
  const uint64_t cache_serial = newCacheSerial();

  std::string_view name() const override { return name_; }
  int32_t priority() const override { return priority_; }
  bool logsRequest() const override { return true; }
  PluginPtr createPlugin() const override;

 private:
  std::string_view name_;
  int32_t priority_;
};

class StreamLog final : public Plugin {
 public:
  explicit StreamLog(const Config& c) : config_(c) {}
  void onLog(const RequestContext& ctx) override {
    config_.sender->pushSerialized(
        [&](std::string* out) { serialize(ctx, config_.cache_serial, out); });
  }

 private:
  const Config& config_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<StreamLog>(*this); }

}  // namespace

absl::StatusOr<uint32_t> millisField(const config::Json& conf, const char* field, double def,
                                     uint32_t zero) {
  const double v = conf.contains(field) && conf[field].is_number() ? conf[field].get<double>()
                                                                   : def;
  if (!(v >= 0) || v > 2147483647) {
    return absl::InvalidArgumentError(std::string(field) +
                                      ": must be a number of milliseconds, at least 0");
  }
  return v == 0 ? zero : static_cast<uint32_t>(std::ceil(v));
}

absl::StatusOr<PluginConfigConstSharedPtr> buildStreamLog(Transport transport,
                                                          std::string_view name,
                                                          int32_t priority,
                                                          const config::Json& conf,
                                                          const Counters& counters) {
  if (conf.contains("custom_fields_by_lua") && conf["custom_fields_by_lua"].is_object() &&
      !conf["custom_fields_by_lua"].empty()) {
    return absl::InvalidArgumentError(std::string("custom_fields_by_lua: ") + kLuaRefused);
  }
  StreamTarget t;
  t.host = conf.value("host", std::string());
  const int64_t port = conf.value("port", int64_t{0});
  if (t.host.empty() || port <= 0 || port > 65535) {
    return absl::InvalidArgumentError("host and port: a destination is required (port 1-65535)");
  }
  t.port = static_cast<uint16_t>(port);
  absl::StatusOr<uint32_t> timeout = millisField(conf, "timeout", 10000, 60000);
  if (!timeout.ok()) return timeout.status();
  t.timeout_ms = *timeout;
  if (transport == Transport::kTcp) {
    absl::StatusOr<uint32_t> keepalive = millisField(conf, "keepalive", 60000, kNoIdleLimit);
    if (!keepalive.ok()) return keepalive.status();
    t.keepalive_ms = *keepalive;
    t.tls = conf.value("tls", false);
    if (conf.contains("tls_sni") && conf["tls_sni"].is_string()) {
      t.tls_sni = conf["tls_sni"].get<std::string>();
    }
  }
  config::Json key = conf;
  key.erase("custom_fields_by_lua");
  auto c = std::make_shared<Config>(name, priority);
  c->sender = transport == Transport::kTcp
                  ? Sender::tcp(key.dump(), t, kMaxQueued, counters)
                  : Sender::udp(key.dump(), t, kMaxQueued, counters);
  return c;
}

}  // namespace portico::dp::plugins::logging
