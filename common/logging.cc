#include "common/logging.h"

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace portico {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

const char* levelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

}  // namespace

void setLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

bool parseLogLevel(std::string_view name, LogLevel* out) {
  for (LogLevel l : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError}) {
    if (name == levelName(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

bool logEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

void logLine(LogLevel level, std::string_view component, std::string_view message) {
  std::string line = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  line.append(" ").append(levelName(level)).append(" [").append(component).append("] ");
  line.append(message).append("\n");
  // One fwrite per line: stdio locks the stream, so lines from threads never interleave.
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace portico
