// The balancer inside the real proxy engine, against real upstream servers that go down and
// come back: retries across targets, passive and active health checks, Kong's 503 when no
// target is left.
#include <chrono>
#include <memory>
#include <thread>

#include <catch2/catch.hpp>

#include "data_plane/balancer/runtime.h"
#include "data_plane/proxy/proxy_server.h"
#include "tests/support/test_support.h"

namespace portico::dp {
namespace {

using testing::EchoUpstream;
using testing::httpRequest;
using testing::waitFor;

balancer::Runtime& runtime() {
  static auto* rt = new balancer::Runtime(balancer::Runtime::Options{});
  return *rt;
}

struct Gateway {
  SnapshotStore store;
  std::unique_ptr<ProxyServer> proxy;
  SnapshotConstSharedPtr snap;

  explicit Gateway(const config::v1::Snapshot& cfg) {
    auto built = Snapshot::build(cfg, "h", &runtime());
    REQUIRE(built.ok());
    snap = *built;
    store.set(snap);
    ProxyOptions opts;
    opts.listen_address = "127.0.0.1";
    opts.listen_port = 0;
    opts.workers = 2;
    auto started = ProxyServer::start(opts, store);
    REQUIRE(started.ok());
    proxy = std::move(*started);
  }
  testing::HttpResponse get() { return httpRequest("127.0.0.1", proxy->port(), "GET", "/api"); }
  std::string health(size_t target) {
    return snap->balancers()[0]->healthReport().targets[target].health;
  }
};

config::v1::Snapshot config(const std::string& healthchecks, const std::vector<int>& ports) {
  config::v1::Snapshot cfg;
  cfg.set_generation(1);
  auto* u = cfg.add_upstreams();
  u->set_id("u-1");
  u->set_name("backend.internal");
  u->set_algorithm("round-robin");
  u->set_slots(10000);
  u->set_healthchecks(healthchecks);
  for (size_t i = 0; i < ports.size(); ++i) {
    auto* t = cfg.add_targets();
    t->set_id("t-" + std::to_string(i));
    t->mutable_upstream()->set_id("u-1");
    t->set_target("127.0.0.1:" + std::to_string(ports[i]));
    t->set_weight(100);
  }
  auto* s = cfg.add_services();
  s->set_id("s-1");
  s->set_protocol("http");
  s->set_host("backend.internal");
  s->set_port(80);
  s->set_enabled(true);
  s->set_retries(5);
  s->set_connect_timeout(1000);
  s->set_read_timeout(2000);
  s->set_write_timeout(2000);
  auto* r = cfg.add_routes();
  r->set_id("r-1");
  r->add_protocols("http");
  r->add_paths("/api");
  r->set_strip_path(true);
  r->set_service_id("s-1");
  return cfg;
}

TEST_CASE("balancer+proxy: retries move to another target; passive checks drop the dead one") {
  EchoUpstream a, b;
  const int dead = testing::freePort();
  Gateway gw(config(R"({"passive":{"unhealthy":{"tcp_failures":1}}})", {a.port(), b.port(), dead}));
  for (int i = 0; i < 30; ++i) {
    testing::HttpResponse r = gw.get();
    REQUIRE(r.status == 200);
  }
  CHECK(a.received().size() + b.received().size() == 30);
  CHECK(a.received().size() >= 10);
  CHECK(b.received().size() >= 10);
  CHECK(gw.health(2) == "UNHEALTHY");
  CHECK(gw.health(0) == "HEALTHY");
  // The Host header is the target's (no upstream host_header, non-default port).
  CHECK(a.received().front().headers.at("host") == "127.0.0.1:" + std::to_string(a.port()));
}

TEST_CASE("balancer+proxy: hash_on=cookie sets the cookie it made up, and then sticks to it") {
  EchoUpstream a, b;
  config::v1::Snapshot cfg = config("", {a.port(), b.port()});
  cfg.mutable_upstreams(0)->set_algorithm("consistent-hashing");
  cfg.mutable_upstreams(0)->set_hash_on("cookie");
  cfg.mutable_upstreams(0)->set_hash_on_cookie("portico-affinity");
  cfg.mutable_upstreams(0)->set_hash_on_cookie_path("/");
  Gateway gw(cfg);
  testing::HttpResponse first = gw.get();
  REQUIRE(first.status == 200);
  const std::string set_cookie = first.headers["set-cookie"];
  INFO(set_cookie);
  REQUIRE(set_cookie.rfind("portico-affinity=", 0) == 0);
  CHECK(set_cookie.find("; Path=/") != std::string::npos);
  const std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
  const size_t a_before = a.received().size(), b_before = b.received().size();
  for (int i = 0; i < 10; ++i) {
    testing::HttpResponse r =
        httpRequest("127.0.0.1", gw.proxy->port(), "GET", "/api", "", {{"Cookie", cookie}});
    REQUIRE(r.status == 200);
    CHECK(r.headers.count("set-cookie") == 0);
  }
  // All ten went to the same target.
  const size_t a_new = a.received().size() - a_before, b_new = b.received().size() - b_before;
  CHECK(((a_new == 10 && b_new == 0) || (a_new == 0 && b_new == 10)));
}

TEST_CASE("balancer+proxy: active checks follow upstreams going down and coming back") {
  auto a = std::make_unique<EchoUpstream>();
  EchoUpstream b;
  const int a_port = a->port();
  Gateway gw(config(R"({"active":{"type":"http","http_path":"/status","timeout":0.5,
                      "healthy":{"interval":0.1,"successes":2},
                      "unhealthy":{"interval":0.1,"tcp_failures":1,"http_failures":1}}})",
                    {a_port, b.port()}));
  REQUIRE(waitFor([&] { return !a->received().empty(); }, std::chrono::seconds(5)));
  CHECK(a->received().front().target == "/status");  // the probe
  // A goes down: the probes notice; every request then goes to B.
  a.reset();
  REQUIRE(waitFor([&] { return gw.health(0) == "UNHEALTHY"; }, std::chrono::seconds(5)));
  CHECK(gw.health(1) == "HEALTHY");
  const size_t b_before = b.received().size();
  for (int i = 0; i < 10; ++i) {
    REQUIRE(gw.get().status == 200);
  }
  size_t b_proxied = 0;
  for (const auto& r : b.received()) {
    b_proxied += r.target == "/";
  }
  CHECK(b.received().size() - b_before >= 10);
  CHECK(b_proxied == 10);
  // A comes back on the same port: two good probes make it healthy, and it gets traffic again.
  a = std::make_unique<EchoUpstream>(a_port);
  REQUIRE(waitFor([&] { return gw.health(0) == "HEALTHY"; }, std::chrono::seconds(5)));
  for (int i = 0; i < 10; ++i) {
    REQUIRE(gw.get().status == 200);
  }
  size_t a_proxied = 0;
  for (const auto& r : a->received()) {
    a_proxied += r.target == "/";
  }
  CHECK(a_proxied >= 1);
  // Everything down: Kong's 503.
  a.reset();
  Gateway only_a(config(R"({"active":{"healthy":{"interval":0.1,"successes":1},
                          "unhealthy":{"interval":0.1,"tcp_failures":1}}})",
                        {a_port}));
  REQUIRE(waitFor([&] { return only_a.health(0) == "UNHEALTHY"; }, std::chrono::seconds(5)));
  testing::HttpResponse r = only_a.get();
  CHECK(r.status == 503);
  CHECK(r.body == R"({"message":"failure to get a peer from the ring-balancer"})");
}

TEST_CASE("balancer+proxy: a service host that is a name resolves off the hot path") {
  EchoUpstream a;
  config::v1::Snapshot cfg = config("", {});
  cfg.clear_upstreams();
  cfg.mutable_services(0)->set_host("localhost");
  cfg.mutable_services(0)->set_port(a.port());
  Gateway gw(cfg);
  testing::HttpResponse r = gw.get();
  // localhost may resolve to ::1 first while the echo server listens on 127.0.0.1 only: the
  // retry then goes to the other address.
  CHECK(r.status == 200);
  cfg.mutable_services(0)->set_host("no-such-host.invalid");
  Gateway bad(cfg);
  r = bad.get();
  CHECK(r.status == 503);
  CHECK(r.body == R"({"message":"name resolution failed"})");
}

}  // namespace
}  // namespace portico::dp
