// Vitals' latency histogram: fixed bins shared by the data plane (which fills them), the
// wire (VitalsBucket's LatencyHistogram) and the control plane (which adds them up in
// PostgreSQL and reads percentiles from them). Fixed bins make rollups a plain element-wise
// sum, so percentiles stay right after any merge of nodes, consumers or time.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

namespace portico::vitals {

// Every bucket covers this many seconds of traffic (Kong Vitals' flush interval).
inline constexpr int64_t kBucketSeconds = 10;

// Upper bounds (inclusive) in milliseconds; a last bin takes everything above.
inline constexpr std::array<int64_t, 15> kLatencyBoundsMs = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000};
inline constexpr size_t kLatencyBins = kLatencyBoundsMs.size() + 1;

using LatencyCounts = std::array<int64_t, kLatencyBins>;

inline size_t latencyBin(int64_t ms) {
  return static_cast<size_t>(
      std::lower_bound(kLatencyBoundsMs.begin(), kLatencyBoundsMs.end(), ms) -
      kLatencyBoundsMs.begin());
}

// The q-quantile (0 < q <= 1) of `counts`: the upper bound of the bin the rank falls in,
// never above `max_ms` (so a single 3 ms request reads 3, not 5). 0 for no samples.
inline int64_t latencyQuantile(const int64_t* counts, int64_t max_ms, double q) {
  int64_t total = 0;
  for (size_t i = 0; i < kLatencyBins; ++i) total += counts[i];
  if (total <= 0) return 0;
  int64_t rank = static_cast<int64_t>(q * static_cast<double>(total) + 0.999999);
  rank = std::clamp<int64_t>(rank, 1, total);
  int64_t seen = 0;
  for (size_t i = 0; i < kLatencyBoundsMs.size(); ++i) {
    seen += counts[i];
    if (seen >= rank) return std::min(kLatencyBoundsMs[i], max_ms);
  }
  return max_ms;
}

// p50, p95 and p99 as latencyQuantile gives them, in one pass over the bins (an hour of 10 s
// buckets by route asks for a million of them).
struct LatencyPercentiles {
  int64_t p50 = 0, p95 = 0, p99 = 0;
};
inline LatencyPercentiles latencyPercentiles(const int64_t* counts, int64_t max_ms) {
  int64_t total = 0;
  for (size_t i = 0; i < kLatencyBins; ++i) total += counts[i];
  LatencyPercentiles out;
  if (total <= 0) return out;
  const auto rankOf = [total](double q) {
    return std::clamp<int64_t>(static_cast<int64_t>(q * static_cast<double>(total) + 0.999999),
                               1, total);
  };
  const int64_t ranks[3] = {rankOf(0.50), rankOf(0.95), rankOf(0.99)};
  int64_t* values[3] = {&out.p50, &out.p95, &out.p99};
  int next = 0;
  int64_t seen = 0;
  for (size_t i = 0; i < kLatencyBoundsMs.size() && next < 3; ++i) {
    seen += counts[i];
    while (next < 3 && seen >= ranks[next]) *values[next++] = std::min(kLatencyBoundsMs[i], max_ms);
  }
  while (next < 3) *values[next++] = max_ms;
  return out;
}

}  // namespace portico::vitals
