// Minimal structured-enough logging to stderr shared by every binary. Abseil 20220623 has no
// absl/log, so this is a thin, thread-safe line writer with a process-wide level.
#pragma once

#include <string_view>

#include "absl/strings/str_format.h"

namespace portico {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Set once at start-up from --log_level; read on every log call.
void setLogLevel(LogLevel level);
bool parseLogLevel(std::string_view name, LogLevel* out);
bool logEnabled(LogLevel level);
// Writes one line "<ISO time> <level> [<component>] <message>" to stderr atomically.
void logLine(LogLevel level, std::string_view component, std::string_view message);

}  // namespace portico

#define PORTICO_LOG_(level, component, ...)                                          \
  do {                                                                               \
    if (::portico::logEnabled(level)) {                                              \
      ::portico::logLine(level, component, ::absl::StrFormat(__VA_ARGS__));          \
    }                                                                                \
  } while (0)
#define LOG_DEBUG(component, ...) PORTICO_LOG_(::portico::LogLevel::kDebug, component, __VA_ARGS__)
#define LOG_INFO(component, ...) PORTICO_LOG_(::portico::LogLevel::kInfo, component, __VA_ARGS__)
#define LOG_WARN(component, ...) PORTICO_LOG_(::portico::LogLevel::kWarn, component, __VA_ARGS__)
#define LOG_ERROR(component, ...) PORTICO_LOG_(::portico::LogLevel::kError, component, __VA_ARGS__)
