// The per-stream push rules: one push in flight, latest-wins queueing, no resend of a
// rejected (generation, hash), nothing the DP already runs or is newer than.
#include "control_plane/sync/push_state.h"

#include <catch2/catch.hpp>

namespace portico::cp {
namespace {

sync::EncodedSnapshotConstSharedPtr snap(uint64_t generation, std::string hash = "") {
  auto s = std::make_shared<sync::EncodedSnapshot>();
  s->generation = generation;
  s->config_hash = hash.empty() ? std::string("h").append(std::to_string(generation)) : hash;
  return s;
}

TEST_CASE("push_state: nothing to send until offered") {
  PushState p;
  CHECK(p.takeNext() == nullptr);
  CHECK_FALSE(p.inFlight());
}

TEST_CASE("push_state: the DP's current config is not sent") {
  PushState p;
  p.setApplied(3, "h3");
  p.offer(snap(3));
  CHECK(p.takeNext() == nullptr);
}

TEST_CASE("push_state: same generation with another hash is sent") {
  PushState p;
  p.setApplied(3, "other");
  p.offer(snap(3));
  CHECK(p.takeNext() != nullptr);
}

TEST_CASE("push_state: older than what the DP runs is not sent") {
  PushState p;
  p.setApplied(5, "h5");
  p.offer(snap(4));
  CHECK(p.takeNext() == nullptr);
}

TEST_CASE("push_state: at most one unacknowledged push; a newer one replaces the queued") {
  PushState p;
  p.offer(snap(1));
  auto first = p.takeNext();
  REQUIRE(first != nullptr);
  CHECK(p.inFlight());
  p.offer(snap(2));
  p.offer(snap(3));
  CHECK(p.takeNext() == nullptr);  // still waiting for the DP
  CHECK(p.queued()->generation == 3);
  CHECK(p.onAck(1, "h1"));
  CHECK(p.appliedGeneration() == 1);
  auto next = p.takeNext();
  REQUIRE(next != nullptr);
  CHECK(next->generation == 3);  // 2 was skipped
  CHECK(p.takeNext() == nullptr);
}

TEST_CASE("push_state: offering what is in flight does not queue it again") {
  PushState p;
  auto s = snap(1);
  p.offer(s);
  REQUIRE(p.takeNext() != nullptr);
  p.offer(s);
  CHECK(p.queued() == nullptr);
  CHECK(p.onAck(1, "h1"));
  CHECK(p.takeNext() == nullptr);
}

TEST_CASE("push_state: a NACKed generation is never offered again") {
  PushState p;
  auto s = snap(4);
  p.offer(s);
  REQUIRE(p.takeNext() != nullptr);
  CHECK(p.onNack(4, "h4"));
  CHECK_FALSE(p.inFlight());
  p.offer(s);
  CHECK(p.takeNext() == nullptr);
  // The next generation goes out normally.
  p.offer(snap(5));
  auto next = p.takeNext();
  REQUIRE(next != nullptr);
  CHECK(next->generation == 5);
}

TEST_CASE("push_state: a rejection carried over from an earlier stream is honoured") {
  PushState p;
  p.setApplied(1, "h1");
  p.addRejected(2, "h2");
  p.offer(snap(2));
  CHECK(p.takeNext() == nullptr);
  p.offer(snap(2, "different-content"));
  CHECK(p.takeNext() != nullptr);
}

TEST_CASE("push_state: an unrelated ACK does not release the in-flight push") {
  PushState p;
  p.offer(snap(2));
  REQUIRE(p.takeNext() != nullptr);
  CHECK_FALSE(p.onAck(1, "h1"));
  CHECK(p.inFlight());
}

}  // namespace
}  // namespace portico::cp
