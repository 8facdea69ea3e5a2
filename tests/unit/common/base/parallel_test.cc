#include "common/parallel.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

TEST_CASE("parallelFor: every index once, in contiguous slices, split only when worth it") {
  struct Run {
    std::mutex mu;
    std::vector<std::pair<size_t, size_t>> slices;
    std::set<std::thread::id> threads;
  };
  const auto run = [](size_t n, size_t min_per_thread, size_t max_threads, Run* r) {
    std::vector<std::atomic<int>> seen(n);
    portico::parallelFor(n, min_per_thread, max_threads, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        seen[i].fetch_add(1);
      }
      std::lock_guard<std::mutex> lock(r->mu);
      r->slices.emplace_back(begin, end);
      r->threads.insert(std::this_thread::get_id());
    });
    for (size_t i = 0; i < n; ++i) {
      REQUIRE(seen[i].load() == 1);
    }
  };
  SECTION("small input: one slice on the calling thread") {
    Run r;
    run(999, 1000, 4, &r);
    REQUIRE(r.slices.size() == 1);
    CHECK(r.slices[0] == std::make_pair(size_t{0}, size_t{999}));
    CHECK(*r.threads.begin() == std::this_thread::get_id());
  }
  SECTION("empty input") {
    Run r;
    run(0, 1, 4, &r);
    CHECK(r.slices.size() == 1);
  }
  SECTION("large input: up to max_threads slices (and no more than the cores)") {
    Run r;
    run(10001, 1000, 2, &r);
    const size_t expected = std::thread::hardware_concurrency() >= 2 ? 2 : 1;
    CHECK(r.slices.size() == expected);
    CHECK(r.threads.size() == expected);
    size_t covered = 0;
    for (const auto& [begin, end] : r.slices) {
      covered += end - begin;
    }
    CHECK(covered == 10001);
  }
}
