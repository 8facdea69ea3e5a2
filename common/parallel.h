// Splitting a loop over independent items across a few threads, for batch work (loading a
// declarative file, decoding a snapshot) that otherwise keeps one core busy while others idle.
#pragma once

#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace portico {

// Calls fn(begin, end) on contiguous slices covering [0, n), the first on the calling thread
// and the others on new threads, and returns when all have. Below `min_per_thread` items
// per slice it does not split (a thread costs ~50 us to start); at most `max_threads` slices,
// and no more than the machine's cores. `fn` must be safe to run concurrently on disjoint
// slices.
template <typename Fn>
void parallelFor(size_t n, size_t min_per_thread, size_t max_threads, const Fn& fn) {
  const size_t cores = std::max<size_t>(1, std::thread::hardware_concurrency());
  const size_t threads =
      std::max<size_t>(1, std::min({max_threads, cores, n / std::max<size_t>(1, min_per_thread)}));
  if (threads <= 1) {
    fn(size_t{0}, n);
    return;
  }
  std::vector<std::thread> others;
  others.reserve(threads - 1);
  const size_t slice = (n + threads - 1) / threads;
  for (size_t t = 1; t < threads; ++t) {
    const size_t begin = std::min(n, t * slice);
    const size_t end = std::min(n, begin + slice);
    others.emplace_back([&fn, begin, end] { fn(begin, end); });
  }
  fn(size_t{0}, std::min(n, slice));
  for (std::thread& t : others) {
    t.join();
  }
}

}  // namespace portico
