#include "control_plane/sync/node_registry.h"

#include <catch2/catch.hpp>

namespace portico::cp {
namespace {

TEST_CASE("node_registry: hello, ack, nack, heartbeat and disconnect are recorded") {
  NodeRegistry r;
  CHECK_FALSE(r.onHello(1, "n1", "host", "0.1.0", "default", 0, "").has_value());
  r.onAck("n1", 3, "h3");
  auto s = r.get("n1");
  REQUIRE(s.has_value());
  CHECK(s->connected);
  CHECK(s->applied_generation == 3);
  CHECK(s->acks == 1);
  r.onNack("n1", 4, "h4", "bad", {{"routes", "r1", "paths.1", "must start with /"}});
  s = r.get("n1");
  CHECK(s->rejected_generation == 4);
  CHECK(s->rejected_errors.size() == 1);
  CHECK(s->applied_generation == 3);
  r.onHeartbeat("n1", 3, "h3");
  // A reconnect (new session) returns the old record, rejection included.
  auto before = r.onHello(2, "n1", "host", "0.1.0", "default", 3, "h3");
  REQUIRE(before.has_value());
  CHECK(before->rejected_hash == "h4");
  // The old session's disconnect does not mark the reconnected node offline.
  r.onDisconnect(1, "n1");
  CHECK(r.get("n1")->connected);
  r.onDisconnect(2, "n1");
  CHECK_FALSE(r.get("n1")->connected);
  CHECK(r.list().size() == 1);
}

}  // namespace
}  // namespace portico::cp
