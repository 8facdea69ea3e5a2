#include "control_plane/sync/node_registry.h"

#include <catch2/catch.hpp>

namespace portico::cp {
namespace {

TEST_CASE("node_registry: health reports are kept per node, replaced, listed per group") {
  NodeRegistry r;
  r.onHealth("ghost", {});  // unknown node: ignored
  CHECK(r.health("default").empty());
  r.onHello(1, "n1", "host1", "0.1.0", "default", 0, "");
  r.onHello(2, "n2", "host2", "0.1.0", "other", 0, "");
  CHECK(r.health("default").empty());  // no report yet
  sync::v1::UpstreamHealth u;
  u.set_upstream_id("u1");
  u.add_targets()->set_health("HEALTHY");
  r.onHealth("n1", {u});
  u.mutable_targets(0)->set_health("UNHEALTHY");
  r.onHealth("n1", {u});
  r.onHealth("n2", {u});
  auto h = r.health("default");
  REQUIRE(h.size() == 1);
  CHECK(h[0].node_id == "n1");
  CHECK(h[0].hostname == "host1");
  CHECK(h[0].connected);
  REQUIRE(h[0].upstreams->size() == 1);
  CHECK((*h[0].upstreams)[0].targets(0).health() == "UNHEALTHY");
  r.onDisconnect(1, "n1");
  h = r.health("default");
  REQUIRE(h.size() == 1);
  CHECK_FALSE(h[0].connected);  // kept, but marked: the endpoint merges connected nodes only
}

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
