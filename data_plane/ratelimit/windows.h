// Kong's fixed rate-limit windows (kong.tools.timestamp.get_timestamps): second, minute, hour,
// day, month and year windows aligned to UTC calendar boundaries, the window lengths Kong uses
// for RateLimit-Reset and key expiry, and the clock both rate-limit plugins read (a test can
// fix it to step across window edges).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace portico::dp::ratelimit {

enum class Period : uint8_t { kSecond, kMinute, kHour, kDay, kMonth, kYear };
inline constexpr int kPeriods = 6;

// Config field names ("second" ... "year"), in Kong's ORDERED_PERIODS order.
inline constexpr std::array<std::string_view, kPeriods> kPeriodNames = {
    "second", "minute", "hour", "day", "month", "year"};
// The same capitalized, for X-RateLimit-Limit-<Period>.
inline constexpr std::array<std::string_view, kPeriods> kPeriodTitles = {
    "Second", "Minute", "Hour", "Day", "Month", "Year"};
// Kong's EXPIRATION table (rate-limiting/expiration.lua): a month is 30 days and a year 365
// for RateLimit-Reset and for the Redis key TTL, whatever the calendar says.
inline constexpr std::array<int64_t, kPeriods> kExpirationS = {1,       60,      3600,
                                                               86400,   2592000, 31536000};

inline constexpr size_t index(Period p) { return static_cast<size_t>(p); }

// Start of the window holding `now_s` (unix seconds, UTC) for every period: Kong's
// get_timestamps, in seconds (Kong's keys carry them in milliseconds).
struct Timestamps {
  std::array<int64_t, kPeriods> start_s{};
  int64_t operator[](Period p) const { return start_s[index(p)]; }
};
Timestamps timestamps(int64_t now_s);

// A number that grows by one per window of the period (unix seconds for second windows,
// year*12+month for month windows, ...): counters index their tables with it.
int64_t windowSeq(Period p, int64_t window_start_s);

// The current time in whole unix seconds (Kong's ngx.time()), or the test clock when set.
int64_t nowSeconds();

namespace testing {
// Fixes nowSeconds() to `unix_s` (0 restores the real clock), so window edges can be tested
// without waiting. Process-wide; tests only.
void setNow(int64_t unix_s);
// Empties the process's local counters (tests start from nothing).
void clearCounters();
}  // namespace testing

// A Lua number as Kong's headers print it (tostring: "%.14g"): 6 -> "6", 6.5 -> "6.5".
std::string luaNumber(double v);
void appendLuaNumber(double v, std::string* out);

}  // namespace portico::dp::ratelimit
