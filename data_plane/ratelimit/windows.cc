#include "data_plane/ratelimit/windows.h"

#include <time.h>

#include <atomic>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>

#include "data_plane/ratelimit/local_counters.h"

namespace portico::dp::ratelimit {
namespace {

std::atomic<int64_t> g_fixed_now{0};

int64_t floorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian, UTC).
int64_t daysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civilFromDays(int64_t z, int64_t* y, unsigned* m) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

}  // namespace

Timestamps timestamps(int64_t now_s) {
  // Every request of a second asks for the same answer: keep the last one per thread (the
  // month and year starts cost a calendar conversion).
  thread_local int64_t cached_s = INT64_MIN;
  thread_local Timestamps cached;
  if (now_s == cached_s) {
    return cached;
  }
  Timestamps t;
  t.start_s[index(Period::kSecond)] = now_s;
  t.start_s[index(Period::kMinute)] = floorDiv(now_s, 60) * 60;
  t.start_s[index(Period::kHour)] = floorDiv(now_s, 3600) * 3600;
  const int64_t days = floorDiv(now_s, 86400);
  t.start_s[index(Period::kDay)] = days * 86400;
  int64_t y = 0;
  unsigned m = 0;
  civilFromDays(days, &y, &m);
  t.start_s[index(Period::kMonth)] = daysFromCivil(y, m, 1) * 86400;
  t.start_s[index(Period::kYear)] = daysFromCivil(y, 1, 1) * 86400;
  cached_s = now_s;
  cached = t;
  return t;
}

int64_t windowSeq(Period p, int64_t start_s) {
  switch (p) {
    case Period::kSecond: return start_s;
    case Period::kMinute: return floorDiv(start_s, 60);
    case Period::kHour: return floorDiv(start_s, 3600);
    case Period::kDay: return floorDiv(start_s, 86400);
    case Period::kMonth:
    case Period::kYear: {
      int64_t y = 0;
      unsigned m = 0;
      civilFromDays(floorDiv(start_s, 86400), &y, &m);
      return p == Period::kYear ? y : y * 12 + (m - 1);
    }
  }
  return start_s;
}

int64_t nowSeconds() {
  const int64_t fixed = g_fixed_now.load(std::memory_order_relaxed);
  if (fixed != 0) {
    return fixed;
  }
  // The coarse clock is a vDSO read of the last tick (a few ms resolution), like nginx's
  // cached ngx.time(): cheap enough for every request.
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec);
}

namespace testing {
void setNow(int64_t unix_s) { g_fixed_now.store(unix_s, std::memory_order_relaxed); }
void clearCounters() { LocalCounters::instance().clearForTesting(); }
}  // namespace testing

void appendLuaNumber(double v, std::string* out) {
  char buf[32];
  if (v > -1e14 && v < 1e14) {
    const auto i = static_cast<int64_t>(v);
    if (static_cast<double>(i) == v) {
      const auto r = std::to_chars(buf, buf + sizeof(buf), i);
      out->append(buf, r.ptr);
      return;
    }
  }
  const int n = std::snprintf(buf, sizeof(buf), "%.14g", v);
  out->append(buf, static_cast<size_t>(n));
}

std::string luaNumber(double v) {
  std::string out;
  appendLuaNumber(v, &out);
  return out;
}

}  // namespace portico::dp::ratelimit
