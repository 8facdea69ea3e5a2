// Balancer algorithms, hash stability, health counters and DNS-driven table updates, without
// a proxy: picks are driven directly with fake request inputs.
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "data_plane/balancer/balancer.h"
#include "data_plane/balancer/runtime.h"

namespace portico::dp::balancer {
namespace {

struct FakeInputs : RequestInputs {
  std::string ip = "10.0.0.1";
  std::string p = "/";
  std::string q;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string_view clientIp() const override { return ip; }
  std::string_view path() const override { return p; }
  std::string_view query() const override { return q; }
  std::string_view header(std::string_view name) const override {
    auto it = headers.find(absl::AsciiStrToLower(std::string(name)));
    return it == headers.end() ? std::string_view() : std::string_view(it->second);
  }
};

Runtime& runtime() {
  static Runtime* rt = [] {
    Runtime::Options o;
    o.dns.min_ttl_ms = 100;
    o.dns.error_retry_ms = 100;
    return new Runtime(o);
  }();
  return *rt;
}

BalancerConfig upstream(Algorithm algo, std::vector<std::pair<std::string, uint32_t>> targets) {
  BalancerConfig c;
  c.name = "svc.upstream";
  c.upstream_id = "u-1";
  c.algorithm = algo;
  c.health = *HealthConfig::parse("");
  for (auto& [host, weight] : targets) {
    c.targets.push_back(TargetSpec{host, 8080, weight});
  }
  return c;
}

std::shared_ptr<const Balancer> make(BalancerConfig c) {
  return Balancer::create(std::move(c), runtime(), std::chrono::milliseconds(2000));
}

// True once `b` has an address (a name's first answer arrives on the resolver thread).
bool waitForPick(const Balancer& b) {
  for (int i = 0; i < 300 && b.addressCount() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return b.addressCount() > 0;
}

std::map<std::string, int> spread(const Balancer& b, int n, FakeInputs in = {}) {
  std::map<std::string, int> counts;
  Endpoint ep;
  for (int i = 0; i < n; ++i) {
    Lease lease;
    REQUIRE(b.pick(in, 0, nullptr, &ep, &lease) == PickStatus::kOk);
    ++counts[ep.address];
  }
  return counts;
}

TEST_CASE("balancer: round-robin follows the weights exactly") {
  auto b = make(upstream(Algorithm::kRoundRobin,
                         {{"10.1.0.1", 100}, {"10.1.0.2", 200}, {"10.1.0.3", 300}, {"10.1.0.4", 0}}));
  auto counts = spread(*b, 6000);
  CHECK(counts["10.1.0.1"] == 1000);
  CHECK(counts["10.1.0.2"] == 2000);
  CHECK(counts["10.1.0.3"] == 3000);
  CHECK(counts.count("10.1.0.4") == 0);  // weight 0 disables a target
  Endpoint ep;
  Lease lease;
  FakeInputs in;
  REQUIRE(b->pick(in, 0, nullptr, &ep, &lease) == PickStatus::kOk);
  CHECK(ep.port == 8080);
  CHECK(ep.pool_key == ep.address + "|8080");
  CHECK(ep.host_header == ep.address + ":8080");
}

TEST_CASE("balancer: smooth round-robin interleaves heavy targets") {
  auto b = make(upstream(Algorithm::kRoundRobin, {{"10.2.0.1", 1}, {"10.2.0.2", 3}}));
  Endpoint ep;
  FakeInputs in;
  std::string seq;
  for (int i = 0; i < 8; ++i) {
    Lease l;
    REQUIRE(b->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
    seq += ep.address.back();
  }
  // Never more than three of the heavy target in a row, and exactly 2 of the light one.
  CHECK(seq.find("2222") == std::string::npos);
  CHECK(std::count(seq.begin(), seq.end(), '1') == 2);
}

TEST_CASE("balancer: host_header override and default ports") {
  BalancerConfig c = upstream(Algorithm::kRoundRobin, {{"10.3.0.1", 100}});
  c.host_header = "api.internal";
  auto b = make(c);
  Endpoint ep;
  Lease l;
  FakeInputs in;
  REQUIRE(b->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
  CHECK(ep.host_header == "api.internal:8080");
  l.reset();  // a lease must not outlive its balancer
  auto plain = make(BalancerConfig::forHost("127.0.0.1", 80, false));
  auto v6 = make(BalancerConfig::forHost("[::1]", 8000, false));
  Lease l2;
  REQUIRE(plain->pick(in, 0, nullptr, &ep, &l2) == PickStatus::kOk);
  CHECK(ep.host_header == "127.0.0.1");
  CHECK(ep.address == "127.0.0.1");
  REQUIRE(v6->pick(in, 0, nullptr, &ep, &l2) == PickStatus::kOk);
  CHECK(ep.address == "::1");
  CHECK(ep.host_header == "[::1]:8000");
}

TEST_CASE("balancer: consistent hashing is stable and moves ~1/N keys when a target is added") {
  std::vector<std::pair<std::string, uint32_t>> targets = {
      {"10.4.0.1", 100}, {"10.4.0.2", 100}, {"10.4.0.3", 100}};
  BalancerConfig c = upstream(Algorithm::kConsistentHashing, targets);
  c.hash_on = HashOn::kHeader;
  c.hash_on_header = "x-user";
  auto before = make(c);
  targets.push_back({"10.4.0.4", 100});
  BalancerConfig c4 = upstream(Algorithm::kConsistentHashing, targets);
  c4.hash_on = HashOn::kHeader;
  c4.hash_on_header = "x-user";
  auto after = make(c4);
  const int kKeys = 4000;
  int moved = 0;
  int moved_elsewhere = 0;
  std::map<std::string, int> share;
  Endpoint ep;
  for (int k = 0; k < kKeys; ++k) {
    FakeInputs in;
    in.headers["x-user"] = absl::StrCat("user-", k);
    Lease l;
    REQUIRE(before->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
    const std::string a = ep.address;
    ++share[a];
    REQUIRE(before->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
    CHECK(ep.address == a);  // same key, same address
    REQUIRE(after->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
    if (ep.address != a) {
      ++moved;
      moved_elsewhere += ep.address != "10.4.0.4";
    }
  }
  for (auto& [addr, n] : share) {
    CHECK(n > kKeys / 3 * 0.8);
    CHECK(n < kKeys / 3 * 1.2);
  }
  CHECK(moved > kKeys / 4 * 0.8);
  CHECK(moved < kKeys / 4 * 1.2);
  CHECK(moved_elsewhere == 0);  // keys only ever move to the new target
}

TEST_CASE("balancer: hash_on inputs and fallback") {
  auto check_sticky = [](BalancerConfig c, auto set_key) {
    auto b = make(std::move(c));
    std::map<std::string, int> per_key_addresses;
    std::set<std::string> all;
    Endpoint ep;
    for (int k = 0; k < 50; ++k) {
      std::set<std::string> seen;
      for (int rep = 0; rep < 3; ++rep) {
        FakeInputs in;
        in.ip = absl::StrCat("192.168.0.", rep);  // varies unless hashing on ip
        set_key(in, k);
        Lease l;
        REQUIRE(b->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
        seen.insert(ep.address);
        all.insert(ep.address);
      }
      CHECK(seen.size() == 1);
    }
    CHECK(all.size() == 3);  // keys do spread
  };
  std::vector<std::pair<std::string, uint32_t>> t = {
      {"10.5.0.1", 10}, {"10.5.0.2", 10}, {"10.5.0.3", 10}};
  BalancerConfig c = upstream(Algorithm::kConsistentHashing, t);
  c.hash_on = HashOn::kCookie;
  c.hash_on_cookie = "sess";
  check_sticky(c, [](FakeInputs& in, int k) {
    in.headers["cookie"] = absl::StrCat("a=b; sess=", k, "; z=1");
  });
  c.hash_on = HashOn::kQueryArg;
  c.hash_on_query_arg = "user";
  check_sticky(c, [](FakeInputs& in, int k) { in.q = absl::StrCat("x=1&user=", k); });
  c.hash_on = HashOn::kPath;
  check_sticky(c, [](FakeInputs& in, int k) { in.p = absl::StrCat("/item/", k); });
  // Header missing: fall back to the query arg.
  c.hash_on = HashOn::kHeader;
  c.hash_on_header = "x-none";
  c.hash_fallback = HashOn::kQueryArg;
  c.hash_fallback_query_arg = "user";
  check_sticky(c, [](FakeInputs& in, int k) { in.q = absl::StrCat("user=", k); });
  // Consumer missing: fall back to the client ip (the only varying input here).
  BalancerConfig ipc = upstream(Algorithm::kConsistentHashing, t);
  ipc.hash_on = HashOn::kConsumer;
  ipc.hash_fallback = HashOn::kIp;
  auto b = make(ipc);
  Endpoint ep;
  std::set<std::string> seen;
  for (int rep = 0; rep < 5; ++rep) {
    FakeInputs in;
    in.ip = "172.16.1.9";
    in.p = absl::StrCat("/", rep);
    Lease l;
    REQUIRE(b->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
    seen.insert(ep.address);
  }
  CHECK(seen.size() == 1);
}

TEST_CASE("balancer: hash_on cookie without the cookie makes one up and asks to set it") {
  BalancerConfig c = upstream(Algorithm::kConsistentHashing, {{"10.6.0.1", 1}, {"10.6.0.2", 1}});
  c.hash_on = HashOn::kCookie;
  c.hash_on_cookie = "sticky";
  c.hash_on_cookie_path = "/app";
  auto b = make(c);
  Endpoint ep;
  Lease l;
  FakeInputs in;
  REQUIRE(b->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
  REQUIRE(ep.set_cookie.rfind("sticky=", 0) == 0);
  CHECK(ep.set_cookie.size() == 7 + 32 + 11);
  CHECK(ep.set_cookie.substr(39) == "; Path=/app");
  // The client comes back with it: same address, no new cookie.
  const std::string first = ep.address;
  in.headers["cookie"] = ep.set_cookie.substr(0, 39);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(b->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
    CHECK(ep.address == first);
    CHECK(ep.set_cookie.empty());
  }
}

TEST_CASE("balancer: least-connections prefers the least loaded, by weight") {
  auto b = make(upstream(Algorithm::kLeastConnections, {{"10.7.0.1", 100}, {"10.7.0.2", 100}}));
  FakeInputs in;
  Endpoint ep;
  std::vector<Lease> open(10);
  std::map<std::string, int> counts;
  for (Lease& l : open) {
    REQUIRE(b->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
    ++counts[ep.address];
  }
  CHECK(counts["10.7.0.1"] == 5);
  CHECK(counts["10.7.0.2"] == 5);
  // Finish every attempt on .1: the next five go to .1.
  {
    // Re-pick to learn which lease is where: release the ones on .1 by picking order.
    std::vector<Lease> more(5);
    for (size_t i = 0; i < open.size(); i += 2) {
      open[i].reset();  // round-robin tie-breaking alternated: evens are one address
    }
    counts.clear();
    for (Lease& l : more) {
      REQUIRE(b->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
      ++counts[ep.address];
    }
    CHECK(counts.size() == 1);  // all five went to the address that was freed
    CHECK(counts.begin()->second == 5);
  }
  BalancerConfig heavy = upstream(Algorithm::kLeastConnections, {{"10.7.1.1", 300}, {"10.7.1.2", 100}});
  auto w = make(heavy);
  std::vector<Lease> held(8);
  counts.clear();
  for (Lease& l : held) {
    REQUIRE(w->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
    ++counts[ep.address];
  }
  CHECK(counts["10.7.1.1"] == 6);
  CHECK(counts["10.7.1.2"] == 2);
}

TEST_CASE("balancer: latency prefers the target that answers faster") {
  auto b = make(upstream(Algorithm::kLatency, {{"10.8.0.1", 100}, {"10.8.0.2", 100}}));
  FakeInputs in;
  Endpoint ep;
  // Warm-up: both get one sample; .1 is slow (a failure counts as very slow).
  for (int i = 0; i < 2; ++i) {
    Lease l;
    REQUIRE(b->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
    b->report(l, ep.address == "10.8.0.1" ? Outcome::kTimeout : Outcome::kResponse, 200);
  }
  std::map<std::string, int> counts;
  for (int i = 0; i < 100; ++i) {
    Lease l;
    REQUIRE(b->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
    ++counts[ep.address];
    b->report(l, Outcome::kResponse, 200);
  }
  CHECK(counts["10.8.0.2"] >= 95);
}

TEST_CASE("balancer: passive checks take a target out; all unhealthy means no peer") {
  BalancerConfig c = upstream(Algorithm::kRoundRobin, {{"10.9.0.1", 100}, {"10.9.0.2", 100}});
  c.upstream_id = "u-passive";
  c.healthchecks_text =
      R"({"passive":{"unhealthy":{"http_failures":3,"tcp_failures":2,"timeouts":1}}})";
  c.health = *HealthConfig::parse(c.healthchecks_text);
  auto b = make(c);
  FakeInputs in;
  Endpoint ep;
  auto fail_one = [&](const std::string& addr, Outcome o, int status) {
    for (int i = 0; i < 4; ++i) {
      Lease l;
      REQUIRE(b->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
      if (ep.address == addr) {
        b->report(l, o, status);
        return;
      }
    }
    FAIL("address never picked");
  };
  fail_one("10.9.0.1", Outcome::kResponse, 500);
  fail_one("10.9.0.1", Outcome::kResponse, 500);
  fail_one("10.9.0.1", Outcome::kResponse, 200);  // a success resets the count
  fail_one("10.9.0.1", Outcome::kResponse, 500);
  fail_one("10.9.0.1", Outcome::kResponse, 500);
  CHECK(spread(*b, 10).size() == 2);
  fail_one("10.9.0.1", Outcome::kResponse, 503);
  auto counts = spread(*b, 10);
  CHECK(counts.size() == 1);
  CHECK(counts["10.9.0.2"] == 10);
  UpstreamReport r = b->healthReport();
  REQUIRE(r.targets.size() == 2);
  CHECK(r.targets[0].health == "UNHEALTHY");
  CHECK(r.targets[1].health == "HEALTHY");
  fail_one("10.9.0.2", Outcome::kTimeout, 0);
  Lease l;
  CHECK(b->pick(in, 0, nullptr, &ep, &l) == PickStatus::kNoHealthy);
  // Health survives a new snapshot with the same upstream and healthchecks.
  auto again = make(c);
  CHECK(again->pick(in, 0, nullptr, &ep, &l) == PickStatus::kNoHealthy);
  l.reset();
  // A different healthchecks record starts from scratch.
  BalancerConfig fresh = c;
  fresh.healthchecks_text =
      R"({"passive":{"unhealthy":{"http_failures":4,"tcp_failures":2,"timeouts":1}}})";
  fresh.health = *HealthConfig::parse(fresh.healthchecks_text);
  auto f = make(fresh);
  Lease fl;
  CHECK(f->pick(in, 0, nullptr, &ep, &fl) == PickStatus::kOk);
}

TEST_CASE("balancer: a retry avoids the address that just failed") {
  for (Algorithm algo : {Algorithm::kRoundRobin, Algorithm::kConsistentHashing,
                         Algorithm::kLeastConnections, Algorithm::kLatency}) {
    auto b = make(upstream(algo, {{"10.10.0.1", 100}, {"10.10.0.2", 100}, {"10.10.0.3", 100}}));
    FakeInputs in;
    Endpoint ep;
    for (int i = 0; i < 20; ++i) {
      Lease first;
      REQUIRE(b->pick(in, 0, nullptr, &ep, &first) == PickStatus::kOk);
      const std::string failed = ep.address;
      Lease second;
      REQUIRE(b->pick(in, 1, &first, &ep, &second) == PickStatus::kOk);
      CHECK(ep.address != failed);
    }
  }
  // With one address, the retry goes to it again.
  auto one = make(upstream(Algorithm::kRoundRobin, {{"10.10.1.1", 100}}));
  FakeInputs in;
  Endpoint ep;
  Lease first, second;
  REQUIRE(one->pick(in, 0, nullptr, &ep, &first) == PickStatus::kOk);
  REQUIRE(one->pick(in, 1, &first, &ep, &second) == PickStatus::kOk);
  CHECK(ep.address == "10.10.1.1");
}

TEST_CASE("balancer: healthchecks.threshold makes the whole upstream unavailable") {
  BalancerConfig c = upstream(Algorithm::kRoundRobin,
                              {{"10.11.0.1", 100}, {"10.11.0.2", 100}, {"10.11.0.3", 100}});
  c.upstream_id = "u-threshold";
  c.healthchecks_text = R"({"threshold":50,"passive":{"unhealthy":{"tcp_failures":1}}})";
  c.health = *HealthConfig::parse(c.healthchecks_text);
  auto b = make(c);
  FakeInputs in;
  Endpoint ep;
  std::set<std::string> down;
  while (down.size() < 2) {
    Lease l;
    REQUIRE(b->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
    if (down.size() < 2) {
      b->report(l, Outcome::kConnectFailure, 0);
      down.insert(ep.address);
    }
  }
  Lease l;
  CHECK(b->pick(in, 0, nullptr, &ep, &l) == PickStatus::kNoHealthy);  // 33% < 50%
}

TEST_CASE("health: counters follow Kong's thresholds") {
  HealthThresholds t;
  t.successes = 2;
  t.http_failures = 2;
  t.tcp_failures = 1;
  t.timeouts = 3;
  AddressHealth h("host", "10.0.0.1", 80);
  CHECK_FALSE(h.record(HealthEvent::kHttpFailure, 500, t));
  CHECK(h.healthy());
  CHECK(h.record(HealthEvent::kHttpFailure, 500, t));
  CHECK_FALSE(h.healthy());
  CHECK_FALSE(h.record(HealthEvent::kSuccess, 200, t));
  CHECK_FALSE(h.record(HealthEvent::kTimeout, 0, t));  // resets the success count
  CHECK_FALSE(h.record(HealthEvent::kSuccess, 200, t));
  CHECK(h.record(HealthEvent::kSuccess, 200, t));
  CHECK(h.healthy());
  CHECK(h.record(HealthEvent::kTcpFailure, 0, t));
  CHECK_FALSE(h.healthy());
  h.set(true);
  CHECK(h.healthy());
  HealthThresholds off;  // all zero: nothing counts
  CHECK_FALSE(h.record(HealthEvent::kTcpFailure, 0, off));
  CHECK(h.healthy());
}

TEST_CASE("health: healthchecks JSON with Kong's defaults") {
  auto d = HealthConfig::parse("");
  REQUIRE(d.ok());
  CHECK_FALSE(d->enabled());
  CHECK(d->active.timeout_ms == 1000);
  CHECK(d->active.concurrency == 10);
  CHECK(d->active.http_path == "/");
  CHECK(d->active.thresholds.healthy_statuses.test(302));
  CHECK(d->active.thresholds.unhealthy_statuses.test(404));
  CHECK(d->passive.unhealthy_statuses.test(503));
  CHECK_FALSE(d->passive.unhealthy_statuses.test(502));
  auto c = HealthConfig::parse(
      R"({"active":{"type":"https","timeout":0.5,"http_path":"/hc","https_sni":"x.test",
          "https_verify_certificate":false,"headers":{"x-a":["1","2"]},
          "healthy":{"interval":2,"successes":3,"http_statuses":[204]},
          "unhealthy":{"interval":1,"tcp_failures":4,"http_statuses":[418]}},
          "passive":{"unhealthy":{"timeouts":7}},"threshold":25})");
  REQUIRE(c.ok());
  CHECK(c->activeEnabled());
  CHECK(c->passiveEnabled());
  CHECK(c->active.type == "https");
  CHECK(c->active.timeout_ms == 500);
  CHECK(c->active.https_sni == "x.test");
  CHECK_FALSE(c->active.https_verify_certificate);
  CHECK(c->active.headers.size() == 2);
  CHECK(c->active.healthy_interval_ms == 2000);
  CHECK(c->active.unhealthy_interval_ms == 1000);
  CHECK(c->active.thresholds.successes == 3);
  CHECK(c->active.thresholds.healthy_statuses.test(204));
  CHECK_FALSE(c->active.thresholds.healthy_statuses.test(200));
  CHECK(c->active.thresholds.unhealthy_statuses.test(418));
  CHECK(c->passive.timeouts == 7);
  CHECK(c->threshold == 25);
  CHECK(HealthConfig::parse("[1]").status().message() == "healthchecks: expected a JSON object");
  CHECK(HealthConfig::parse(R"({"active":{"timeout":"x"}})").status().message() ==
        "healthchecks.active.timeout: expected a number");
}

TEST_CASE("balancer config: from Kong's upstream and targets") {
  config::v1::Upstream u;
  u.set_id("u-9");
  u.set_name("orders.v1");
  u.set_algorithm("consistent-hashing");
  u.set_hash_on("header");
  u.set_hash_on_header("X-User");
  u.set_hash_fallback("ip");
  u.set_slots(100);
  config::v1::Target t1, t2;
  t1.set_target("10.12.0.1:9000");
  t1.set_weight(50);
  t2.set_target("[::1]:9001");
  t2.set_weight(0);
  auto c = BalancerConfig::fromUpstream(u, {&t1, &t2});
  REQUIRE(c.ok());
  CHECK(c->algorithm == Algorithm::kConsistentHashing);
  CHECK(c->hash_on == HashOn::kHeader);
  CHECK(c->hash_on_header == "x-user");
  CHECK(c->hash_fallback == HashOn::kIp);
  CHECK(c->slots == 100);
  REQUIRE(c->targets.size() == 2);
  CHECK(c->targets[0].host == "10.12.0.1");
  CHECK(c->targets[0].port == 9000);
  CHECK(c->targets[1].host == "::1");
  CHECK(c->targets[1].weight == 0);
  u.set_algorithm("fastest");
  CHECK(BalancerConfig::fromUpstream(u, {}).status().message() ==
        "upstream orders.v1: unknown algorithm 'fastest'");
}

TEST_CASE("balancer: per-worker state stays on its own thread") {
  auto b = make(upstream(Algorithm::kRoundRobin, {{"10.13.0.1", 1}, {"10.13.0.2", 1}}));
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      FakeInputs in;
      Endpoint ep;
      std::map<std::string, int> c;
      for (int i = 0; i < 1000; ++i) {
        Lease l;
        if (b->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk) {
          ++c[ep.address];
        }
      }
      ok += c["10.13.0.1"] == 500 && c["10.13.0.2"] == 500;
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  CHECK(ok == 4);
}

// ---- DNS ---------------------------------------------------------------------------------

struct HostsFile {
  std::string path;
  HostsFile() {
    char tmpl[] = "/tmp/portico-hosts-XXXXXX";
    int fd = mkstemp(tmpl);
    REQUIRE(fd >= 0);
    close(fd);
    path = tmpl;
    setenv("CARES_HOSTS", path.c_str(), 1);
  }
  ~HostsFile() {
    unsetenv("CARES_HOSTS");
    std::remove(path.c_str());
  }
  void write(const std::string& text) {
    std::ofstream(path, std::ios::trunc) << text;
  }
};

TEST_CASE("dns: names resolve off the hot path, re-resolve on TTL expiry, keep the last good") {
  HostsFile hosts;
  hosts.write("10.20.0.1 svc-a.portico.test\n10.20.0.2 svc-a.portico.test\n");
  Runtime::Options o;
  o.dns.lookups = "f";  // hosts file only: no network in tests
  o.dns.min_ttl_ms = 100;
  o.dns.error_retry_ms = 50;
  Runtime rt(o);
  BalancerConfig c = upstream(Algorithm::kRoundRobin, {{"svc-a.portico.test", 100}});
  auto b = Balancer::create(c, rt, std::chrono::milliseconds(3000));
  REQUIRE(b->addressCount() == 2);  // both A records, each with the target's weight
  auto counts = spread(*b, 10);
  CHECK(counts["10.20.0.1"] == 5);
  CHECK(counts["10.20.0.2"] == 5);
  const uint64_t v = b->tableVersion();
  UpstreamReport r = b->healthReport();
  REQUIRE(r.targets.size() == 1);
  CHECK(r.targets[0].target == "svc-a.portico.test:8080");
  CHECK(r.targets[0].health == "HEALTHCHECKS_OFF");
  CHECK(r.targets[0].addresses.size() == 2);

  hosts.write("10.20.0.3 svc-a.portico.test\n");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (b->tableVersion() == v && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(b->tableVersion() != v);
  counts = spread(*b, 4);
  CHECK(counts["10.20.0.3"] == 4);

  // The name disappears: the last good answer stays in use.
  hosts.write("10.20.0.9 other.portico.test\n");
  const uint64_t resolutions = rt.resolver().resolutions();
  while (rt.resolver().resolutions() < resolutions + 3) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  counts = spread(*b, 4);
  CHECK(counts["10.20.0.3"] == 4);

  // A name that never resolved: no addresses (503 name resolution failed upstream).
  auto none = Balancer::create(upstream(Algorithm::kRoundRobin, {{"nope.portico.test", 100}}), rt,
                               std::chrono::milliseconds(3000));
  FakeInputs in;
  Endpoint ep;
  Lease l;
  CHECK(none->pick(in, 0, nullptr, &ep, &l) == PickStatus::kNoAddresses);
  CHECK(none->healthReport().targets[0].health == "DNS_ERROR");
}

TEST_CASE("dns: localhost and IP literals") {
  Runtime::Options o;
  Runtime rt(o);
  auto rec = rt.resolver().watch("127.0.0.1");
  CHECK(rec->settled());
  CHECK(*rec->addresses() == std::vector<std::string>{"127.0.0.1"});
  auto b = Balancer::create(BalancerConfig::forHost("localhost", 80, false), rt,
                            std::chrono::milliseconds(3000));
  FakeInputs in;
  Endpoint ep;
  Lease l;
  REQUIRE(b->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
  CHECK((ep.address == "127.0.0.1" || ep.address == "::1"));
  CHECK(ep.host_header == "localhost");
}

TEST_CASE("balancer: a service's IP-literal host is a fixed endpoint, a name a real balancer") {
  FakeInputs in;
  Endpoint ep;
  Lease l;
  auto v4 = Balancer::forService("10.9.0.1", 8080, false, runtime());
  REQUIRE(v4->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
  CHECK(ep.address == "10.9.0.1");
  CHECK(ep.port == 8080);
  CHECK(ep.pool_key == "10.9.0.1|8080");
  CHECK(ep.host_header == "10.9.0.1:8080");
  CHECK_FALSE(l.active());  // nothing to count: no per-worker state at all
  v4->report(l, Outcome::kConnectFailure, 0);
  Lease retry;
  REQUIRE(v4->pick(in, 1, &l, &ep, &retry) == PickStatus::kOk);  // Kong retries the only one
  CHECK(ep.address == "10.9.0.1");
  CHECK(v4->addressCount() == 1);
  UpstreamReport r = v4->healthReport();
  REQUIRE(r.targets.size() == 1);
  CHECK(r.targets[0].target == "10.9.0.1:8080");
  CHECK(r.targets[0].health == "HEALTHCHECKS_OFF");

  auto v6 = Balancer::forService("[::1]", 443, true, runtime());
  REQUIRE(v6->pick(in, 0, nullptr, &ep, &l) == PickStatus::kOk);
  CHECK(ep.address == "::1");
  CHECK(ep.pool_key == "::1|443");
  CHECK(ep.host_header == "[::1]");

  auto named = Balancer::forService("localhost", 80, false, runtime());
  REQUIRE(dns::Resolver::waitSettled({runtime().resolver().watch("localhost")},
                                     std::chrono::milliseconds(3000)));
  REQUIRE(waitForPick(*named));
  // Declared after `named`: a lease must end before its balancer (see balancer.h).
  Lease named_lease;
  REQUIRE(named->pick(in, 0, nullptr, &ep, &named_lease) == PickStatus::kOk);
  CHECK((ep.address == "127.0.0.1" || ep.address == "::1"));
  CHECK(ep.host_header == "localhost");
  CHECK(named_lease.active());  // a name gets the full balancer (its addresses may change)
}

}  // namespace
}  // namespace portico::dp::balancer
