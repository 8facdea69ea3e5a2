// file-log (Kong 3.10, PRIORITY 9): appends Kong's serialized request, one JSON object and a
// newline, to `path` for every request (logging/serializer.h). The descriptor is kept open per
// path and reopened after SIGUSR1 (logging/log_files.h); with `reopen` it is opened and closed
// around each line, as Kong does.
//
// The worker writes the line itself, as Kong's file-log does: one write(2) with O_APPEND of a
// line of a few hundred bytes goes to the page cache and does not wait for the disk. A file
// on a slow network file system would slow the workers; use http-log, tcp-log or udp-log there.
#include <string>

#include "absl/status/statusor.h"
#include "common/config/schema.h"
#include "common/logging.h"
#include "data_plane/plugins/logging/log_files.h"
#include "data_plane/plugins/logging/log_schema.h"
#include "data_plane/plugins/logging/serializer.h"
#include "data_plane/plugins/plugin_stats.h"

namespace portico::dp::plugins::file_log {
namespace {

PluginCounter g_written("portico_dp_file_log_written_total", "Lines file-log wrote.");
PluginCounter g_errors("portico_dp_file_log_errors_total",
                       "Lines file-log could not write (the file could not be opened or "
                       "written).");

class Config final : public PluginConfig {
 public:
  std::shared_ptr<logging::LogFile> file;
  const uint64_t cache_serial = logging::newCacheSerial();
  bool reopen = false;

  std::string_view name() const override { return "file-log"; }
  int32_t priority() const override { return 9; }
  bool logsRequest() const override { return true; }
  PluginPtr createPlugin() const override;
};

class FileLog final : public Plugin {
 public:
  explicit FileLog(const Config& c) : config_(c) {}
  void onLog(const RequestContext& ctx) override {
    thread_local std::string line;  // kept by the worker: no allocation per request
    line.clear();
    logging::serialize(ctx, config_.cache_serial, &line);
    line.push_back('\n');
    std::string err;
    if (config_.file->append(line, config_.reopen, &err)) {
      g_written.inc();
      return;
    }
    g_errors.inc();
    thread_local uint64_t last_warn_s = 0;
    const uint64_t now_s = ctx.latencies().started_at_ms / 1000;
    if (now_s != last_warn_s) {  // at most once a second per worker
      last_warn_s = now_s;
      LOG_WARN("file-log", "%s", err.c_str());
    }
  }

 private:
  const Config& config_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<FileLog>(*this); }

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&,
                                                 const config::Json& conf) {
  auto c = std::make_shared<Config>();
  if (!conf.contains("path") || !conf["path"].is_string()) {
    return absl::InvalidArgumentError("path: required field missing");
  }
  if (conf.contains("custom_fields_by_lua") && conf["custom_fields_by_lua"].is_object() &&
      !conf["custom_fields_by_lua"].empty()) {
    return absl::InvalidArgumentError(std::string("custom_fields_by_lua: ") +
                                      logging::kLuaRefused);
  }
  c->file = logging::LogFile::get(conf["path"].get<std::string>());
  c->reopen = conf.value("reopen", false);
  return c;
}

}  // namespace portico::dp::plugins::file_log
