// The per-stream push rules (the protocol state machine on the CP): one push in flight,
// latest-wins queueing, no resend of a rejected (generation, hash), nothing the DP already
// runs or is newer than, and the delta/full choice at the window's edges.
#include "control_plane/sync/push_state.h"

#include <catch2/catch.hpp>

namespace portico::cp {
namespace {

std::string h(uint64_t generation) { return std::string("h").append(std::to_string(generation)); }

sync::EncodedSnapshotConstSharedPtr full(uint64_t generation, std::string hash = "") {
  auto s = std::make_shared<sync::EncodedSnapshot>();
  s->generation = generation;
  s->config_hash = hash.empty() ? h(generation) : hash;
  s->kind = sync::v1::PAYLOAD_KIND_SNAPSHOT;
  return s;
}

sync::EncodedSnapshotConstSharedPtr delta(uint64_t base, uint64_t generation) {
  auto s = std::make_shared<sync::EncodedSnapshot>();
  s->generation = generation;
  s->config_hash = h(generation);
  s->kind = sync::v1::PAYLOAD_KIND_DELTA;
  s->base_generation = base;
  s->base_hash = h(base);
  return s;
}

// A target with its full payload ready (the common case in these tests).
TargetConstSharedPtr target(uint64_t generation, std::string hash = "") {
  auto t = std::make_shared<Target>("default", generation, hash.empty() ? h(generation) : hash);
  t->setFull(full(generation, hash));
  return t;
}

TEST_CASE("push_state: nothing to send until offered") {
  PushState p;
  CHECK(p.takeNext().payload == nullptr);
  CHECK_FALSE(p.inFlight());
}

TEST_CASE("push_state: resume at the current generation sends nothing") {
  PushState p;
  p.setApplied(3, "h3");
  p.offer(target(3));
  auto n = p.takeNext();
  CHECK(n.payload == nullptr);
  CHECK(n.waiting_for == nullptr);  // and asks for no encoding either
  CHECK(p.queued() == nullptr);
}

TEST_CASE("push_state: same generation with another hash is sent") {
  PushState p;
  p.setApplied(3, "other");
  p.offer(target(3));
  CHECK(p.takeNext().payload != nullptr);
}

TEST_CASE("push_state: older than what the DP runs is not sent") {
  PushState p;
  p.setApplied(5, "h5");
  p.offer(target(4));
  CHECK(p.takeNext().payload == nullptr);
}

TEST_CASE("push_state: at most one unacknowledged push; a newer one replaces the queued") {
  PushState p;
  p.offer(target(1));
  auto first = p.takeNext().payload;
  REQUIRE(first != nullptr);
  CHECK(p.inFlight());
  p.offer(target(2));
  p.offer(target(3));
  CHECK(p.takeNext().payload == nullptr);  // still waiting for the DP
  CHECK(p.queued()->generation() == 3);
  CHECK(p.onAck(1, "h1"));
  CHECK(p.appliedGeneration() == 1);
  auto next = p.takeNext().payload;
  REQUIRE(next != nullptr);
  CHECK(next->generation == 3);  // 2 was skipped
  CHECK(p.takeNext().payload == nullptr);
}

TEST_CASE("push_state: offering what is in flight drops the queued older one") {
  PushState p;
  auto t2 = target(2);
  p.offer(t2);
  REQUIRE(p.takeNext().payload != nullptr);
  p.offer(target(1));
  p.offer(t2);
  CHECK(p.queued() == nullptr);
}

TEST_CASE("push_state: a NACKed full generation is never resent, across streams too") {
  PushState p;
  auto t4 = target(4);
  p.offer(t4);
  REQUIRE(p.takeNext().payload != nullptr);
  CHECK(p.onNack(4, "h4"));
  p.offer(t4);
  CHECK(p.takeNext().payload == nullptr);
  p.offer(target(5));
  CHECK(p.takeNext().payload != nullptr);  // the next generation goes out normally

  PushState reconnected;  // a new stream of the same node learns the rejection
  reconnected.addRejected(4, "h4");
  reconnected.offer(t4);
  CHECK(reconnected.takeNext().payload == nullptr);
}

TEST_CASE("push_state: answers that are not about the push in flight do not close it") {
  PushState p;
  p.offer(target(2));
  REQUIRE(p.takeNext().payload != nullptr);
  CHECK_FALSE(p.onAck(1, "h1"));
  CHECK(p.inFlight());
  CHECK(p.onAck(2, "h2"));
  CHECK_FALSE(p.inFlight());
}

TEST_CASE("push_state: a delta-capable DP inside the window gets the delta") {
  PushState p;
  p.setDeltaCapable(true);
  p.setApplied(4, "h4");
  auto t = std::make_shared<Target>("default", 5, h(5));
  t->addDelta(delta(4, 5));
  p.offer(t);
  auto n = p.takeNext();
  REQUIRE(n.payload != nullptr);
  CHECK(n.payload->kind == sync::v1::PAYLOAD_KIND_DELTA);
  CHECK(n.payload->base_generation == 4);
}

TEST_CASE("push_state: a DP without the capability gets the full snapshot") {
  PushState p;
  p.setApplied(4, "h4");
  auto t = std::make_shared<Target>("default", 5, h(5));
  t->addDelta(delta(4, 5));
  p.offer(t);
  auto n = p.takeNext();
  CHECK(n.payload == nullptr);
  CHECK(n.need_full);  // not encoded yet: the server is asked for it, the target stays queued
  REQUIRE(n.waiting_for != nullptr);
  CHECK(p.queued() != nullptr);
  t->setFull(full(5));
  n = p.takeNext();
  REQUIRE(n.payload != nullptr);
  CHECK(n.payload->kind == sync::v1::PAYLOAD_KIND_SNAPSHOT);
}

TEST_CASE("push_state: delta window edges") {
  SECTION("a base without a prepared delta asks for one") {
    PushState p;
    p.setDeltaCapable(true);
    p.setApplied(2, "h2");
    auto t = std::make_shared<Target>("default", 5, h(5));
    t->addDelta(delta(4, 5));
    p.offer(t);
    auto n = p.takeNext();
    CHECK(n.payload == nullptr);
    CHECK_FALSE(n.need_full);
    REQUIRE(n.waiting_for != nullptr);
    // The server prepares it (inside the window)...
    t->addDelta(delta(2, 5));
    n = p.takeNext();
    REQUIRE(n.payload != nullptr);
    CHECK(n.payload->base_generation == 2);
  }
  SECTION("a base outside the window falls back to the full snapshot") {
    PushState p;
    p.setDeltaCapable(true);
    p.setApplied(1, "h1");
    auto t = std::make_shared<Target>("default", 200, h(200));
    t->markNoDelta(1);
    t->setFull(full(200));
    p.offer(t);
    auto n = p.takeNext();
    REQUIRE(n.payload != nullptr);
    CHECK(n.payload->kind == sync::v1::PAYLOAD_KIND_SNAPSHOT);
  }
  SECTION("same base generation but another hash gets the full snapshot") {
    PushState p;
    p.setDeltaCapable(true);
    p.setApplied(4, "not-h4");
    auto t = target(5);
    std::const_pointer_cast<Target>(t)->addDelta(delta(4, 5));
    p.offer(t);
    auto n = p.takeNext();
    REQUIRE(n.payload != nullptr);
    CHECK(n.payload->kind == sync::v1::PAYLOAD_KIND_SNAPSHOT);
  }
  SECTION("a DP with nothing (generation 0) gets the full snapshot") {
    PushState p;
    p.setDeltaCapable(true);
    p.offer(target(5));
    auto n = p.takeNext();
    REQUIRE(n.payload != nullptr);
    CHECK(n.payload->kind == sync::v1::PAYLOAD_KIND_SNAPSHOT);
  }
}

TEST_CASE("push_state: a NACKed delta is followed once by the full snapshot, never again") {
  PushState p;
  p.setDeltaCapable(true);
  p.setApplied(4, "h4");
  auto t = target(5);
  std::const_pointer_cast<Target>(t)->addDelta(delta(4, 5));
  p.offer(t);
  auto n = p.takeNext();
  REQUIRE(n.payload != nullptr);
  REQUIRE(n.payload->kind == sync::v1::PAYLOAD_KIND_DELTA);
  CHECK(p.onNack(5, "h5"));
  n = p.takeNext();
  REQUIRE(n.payload != nullptr);
  CHECK(n.payload->kind == sync::v1::PAYLOAD_KIND_SNAPSHOT);
  CHECK(p.onNack(5, "h5"));
  p.offer(t);
  CHECK(p.takeNext().payload == nullptr);  // the full NACK is final
}

}  // namespace
}  // namespace portico::cp

namespace portico::cp {
namespace {

// A target whose compatibility class "P0001" payload has its own hash ("c<gen>").
std::shared_ptr<Target> compatTarget(uint64_t generation) {
  auto t = std::make_shared<Target>("default", generation, h(generation));
  t->setFull(full(generation));
  return t;
}

TEST_CASE("push_state: a compatibility-class DP waits for its class payload, never a delta") {
  PushState p;
  p.setCompatClass("P0001");
  p.setDeltaCapable(true);
  p.setApplied(1, "c1");
  auto t = compatTarget(2);
  t->addDelta(delta(1, 2));  // native DPs would get this
  p.offer(t);
  auto n = p.takeNext();
  REQUIRE(n.payload == nullptr);
  CHECK(n.need_full);
  CHECK(n.compat_class == "P0001");
  auto issues = std::make_shared<const std::vector<CompatibilityIssue>>(
      std::vector<CompatibilityIssue>{{"P0001", "warning", "d", "upstreams", "u1", "f"}});
  t->setCompat("P0001", full(2, "c2"), issues);
  n = p.takeNext();
  REQUIRE(n.payload != nullptr);
  CHECK(n.payload->config_hash == "c2");
  CHECK(t->compatIssues("P0001")->size() == 1);
  CHECK(t->compatIssues("P0002") == nullptr);
  CHECK(p.onAck(2, "c2"));
}

TEST_CASE("push_state: a class payload the DP runs or rejected is not sent again") {
  auto t = compatTarget(2);
  t->setCompat("P0001", full(2, "c2"), nullptr);
  {
    PushState p;  // reconnect with the class payload applied
    p.setCompatClass("P0001");
    p.setApplied(2, "c2");
    p.offer(t);
    CHECK(p.takeNext().payload == nullptr);
    CHECK(p.queued() == nullptr);
  }
  {
    PushState p;  // it NACKed that class payload on an earlier stream
    p.setCompatClass("P0001");
    p.setApplied(1, "c1");
    p.addRejected(2, "c2");
    p.offer(t);
    CHECK(p.takeNext().payload == nullptr);
  }
}

}  // namespace
}  // namespace portico::cp
