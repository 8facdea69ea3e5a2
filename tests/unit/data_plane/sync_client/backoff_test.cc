#include "data_plane/sync_client/backoff.h"

#include <catch2/catch.hpp>

namespace portico::dp {
namespace {

TEST_CASE("backoff: full jitter under an exponential ceiling capped at max") {
  Backoff b(absl::Milliseconds(100), absl::Seconds(10), /*seed=*/7);
  absl::Duration ceiling = absl::Milliseconds(100);
  for (int i = 0; i < 20; ++i) {
    const absl::Duration d = b.next();
    CHECK(d >= absl::ZeroDuration());
    CHECK(d <= ceiling);
    ceiling = std::min(ceiling * 2, absl::Seconds(10));
  }
}

TEST_CASE("backoff: delays reach the cap region and reset starts over") {
  Backoff b(absl::Milliseconds(100), absl::Seconds(10), /*seed=*/1);
  absl::Duration biggest;
  for (int i = 0; i < 50; ++i) {
    biggest = std::max(biggest, b.next());
  }
  CHECK(biggest > absl::Seconds(5));  // 43 draws at the cap: practically certain
  b.reset();
  CHECK(b.next() <= absl::Milliseconds(100));
}

}  // namespace
}  // namespace portico::dp
