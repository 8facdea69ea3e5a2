// Retirer: a replaced object is destroyed on the retirer's thread, only after every other
// holder (an in-flight request) let go, never blocking the publisher; held too long, it is
// let go to its last holder; the destructor releases what is still queued.
#include "common/retirer.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include <catch2/catch.hpp>

namespace portico {
namespace {

using namespace std::chrono_literals;

struct Tracked {
  std::atomic<std::thread::id>* destroyed_on;
  std::atomic<int>* destroyed;
  ~Tracked() {
    destroyed_on->store(std::this_thread::get_id());
    destroyed->fetch_add(1);
  }
};

bool waitFor(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST_CASE("retirer: an object nobody else holds is destroyed on the retirer's thread") {
  std::atomic<std::thread::id> on{};
  std::atomic<int> destroyed{0};
  std::atomic<int> released{0};
  Retirer<Tracked> retirer([&] { released++; });
  retirer.retire(nullptr);  // nothing to do
  // Made in its own statement: the temporary Tracked dies here, on this thread, before the
  // retirer can see the object (as an argument of retire() it died after retire() returned,
  // and could overwrite `on` after the retirer's destruction).
  auto value = std::make_shared<const Tracked>(Tracked{&on, &destroyed});
  retirer.retire(std::move(value));
  REQUIRE(waitFor([&] { return released.load() == 1; }));
  CHECK(destroyed.load() >= 1);
  CHECK(on.load() != std::this_thread::get_id());
  // after_release runs before the retirer updates its count: wait, do not race it.
  CHECK(waitFor([&] { return retirer.pending() == 0; }));
}

TEST_CASE("retirer: an object still in use waits for its last user, then dies on the retirer") {
  std::atomic<std::thread::id> on{};
  std::atomic<int> destroyed{0};
  Retirer<Tracked> retirer;
  auto value = std::make_shared<const Tracked>(Tracked{&on, &destroyed});
  const int before = destroyed.load();  // the temporary Tracked above counted once
  std::shared_ptr<const Tracked> request = value;  // an in-flight request's reference
  retirer.retire(std::move(value));
  std::this_thread::sleep_for(50ms);
  CHECK(destroyed.load() == before);  // the request still uses it
  CHECK(retirer.pending() == 1);
  request.reset();  // the request ends: not the last reference, so nothing runs here
  REQUIRE(waitFor([&] { return destroyed.load() == before + 1; }));
  CHECK(on.load() != std::this_thread::get_id());
  REQUIRE(waitFor([&] { return retirer.pending() == 0; }));
}

TEST_CASE("retirer: an object kept by a long request does not hold up the ones after it") {
  std::atomic<std::thread::id> on{};
  std::atomic<int> destroyed{0};
  Retirer<Tracked> retirer;  // max_wait 30 s
  auto first = std::make_shared<const Tracked>(Tracked{&on, &destroyed});
  std::shared_ptr<const Tracked> websocket = first;  // outlives the test's waits
  retirer.retire(std::move(first));
  const int before = destroyed.load();
  for (int i = 0; i < 5; ++i) {
    retirer.retire(std::make_shared<const Tracked>(Tracked{&on, &destroyed}));
  }
  // The five temporaries counted once each; the five retired objects die within moments.
  REQUIRE(waitFor([&] { return destroyed.load() == before + 10; }));
  CHECK(waitFor([&] { return retirer.pending() == 1; }));  // only the "WebSocket"'s
  websocket.reset();
  REQUIRE(waitFor([&] { return retirer.pending() == 0; }));
}

TEST_CASE("retirer: an object held past max_wait is left to its last holder") {
  std::atomic<std::thread::id> on{};
  std::atomic<int> destroyed{0};
  Retirer<Tracked> retirer({}, absl::Milliseconds(20));
  auto value = std::make_shared<const Tracked>(Tracked{&on, &destroyed});
  const int before = destroyed.load();
  std::shared_ptr<const Tracked> websocket = value;
  retirer.retire(std::move(value));
  REQUIRE(waitFor([&] { return retirer.pending() == 0; }));
  CHECK(destroyed.load() == before);
  websocket.reset();  // the last holder destroys it
  CHECK(destroyed.load() == before + 1);
  CHECK(on.load() == std::this_thread::get_id());
}

TEST_CASE("retirer: its destructor releases what is still queued without waiting for users") {
  std::atomic<std::thread::id> on{};
  std::atomic<int> destroyed{0};
  std::shared_ptr<const Tracked> held;
  const auto start = std::chrono::steady_clock::now();
  {
    Retirer<Tracked> retirer;  // max_wait 30 s
    auto value = std::make_shared<const Tracked>(Tracked{&on, &destroyed});
    held = value;
    retirer.retire(std::move(value));
    for (int i = 0; i < 3; ++i) {
      retirer.retire(std::make_shared<const Tracked>(Tracked{&on, &destroyed}));
    }
  }
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  const int after = destroyed.load();
  held.reset();
  CHECK(destroyed.load() == after + 1);
}

}  // namespace
}  // namespace portico
