// The proxy engine's Kong behaviours on real sockets: Expect: 100-continue, WebSocket upgrade
// relay, early upstream answers while the request body streams, trusted_ips / real IP and the
// X-Forwarded-* family, Kong debug headers, service retries, and the plugin phases.
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>

#include <catch2/catch.hpp>

#include "data_plane/proxy/proxy_server.h"
#include "tests/unit/data_plane/proxy/wire.h"

namespace portico::dp {
namespace {

using testing::RawClient;
using testing::ScriptedUpstream;
using testing::WireResponse;

config::v1::Service* addService(config::v1::Snapshot* s, const std::string& id, int port,
                                int retries = 0, int read_timeout_ms = 5000) {
  auto* svc = s->add_services();
  svc->set_id(id);
  svc->set_name(id + "-name");
  svc->set_protocol("http");
  svc->set_host("127.0.0.1");
  svc->set_port(port);
  svc->set_enabled(true);
  svc->set_retries(retries);
  svc->set_connect_timeout(2000);
  svc->set_read_timeout(read_timeout_ms);
  svc->set_write_timeout(5000);
  return svc;
}

config::v1::Route* addRoute(config::v1::Snapshot* s, const std::string& id,
                            const std::string& path, const std::string& service_id) {
  auto* r = s->add_routes();
  r->set_id(id);
  r->set_name(id);
  r->add_protocols("http");
  r->add_protocols("https");
  r->add_paths(path);
  r->set_strip_path(false);
  if (!service_id.empty()) r->set_service_id(service_id);
  return r;
}

struct Fixture {
  ScriptedUpstream upstream;
  SnapshotStore store;
  std::unique_ptr<ProxyServer> proxy;

  explicit Fixture(std::function<void(ProxyOptions&)> tweak = {},
                   std::vector<PluginConfigConstSharedPtr> plugins = {}) {
    config::v1::Snapshot cfg;
    cfg.set_generation(1);
    addService(&cfg, "up", upstream.port());
    addService(&cfg, "dead", testing::closedPort(), /*retries=*/3);
    addService(&cfg, "slow", upstream.port(), /*retries=*/2, /*read_timeout_ms=*/300);
    addRoute(&cfg, "r-up", "/", "up");
    addRoute(&cfg, "r-dead", "/dead", "dead");
    addRoute(&cfg, "r-slow", "/slow", "slow");
    addRoute(&cfg, "r-strip", "/strip", "up")->set_strip_path(true);
    addRoute(&cfg, "r-slowok", "/slowok", "up");  // the upstream sleeps 1.5 s, within timeouts
    auto* https_only = addRoute(&cfg, "r-https", "/secure", "up");
    https_only->clear_protocols();
    https_only->add_protocols("https");
    https_only->set_https_redirect_status_code(426);
    auto snap = Snapshot::build(
        cfg, "h1", nullptr,
        plugins.empty() ? nullptr : PluginChains::globalOnly(std::move(plugins)));
    REQUIRE(snap.ok());
    store.set(*snap);
    ProxyOptions opts;
    opts.listen_address = "127.0.0.1";
    opts.listen_port = 0;
    opts.workers = 1;
    if (tweak) tweak(opts);
    auto started = ProxyServer::start(opts, store);
    REQUIRE(started.ok());
    proxy = std::move(*started);
  }
  int port() const { return proxy->port(); }
};

std::string get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: client.test:8000\r\n" + extra + "\r\n";
}

bool has(const std::string& body, const std::string& line) {
  return body.find(line + "\n") != std::string::npos;
}

TEST_CASE("proxy: Expect: 100-continue gets an interim 100, then the body is forwarded") {
  Fixture f;
  RawClient c(f.port());
  c.send("PUT /upload HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  CHECK(c.readBytes(25) == "HTTP/1.1 100 Continue\r\n\r\n");
  c.send("hello");
  WireResponse r = c.read();
  REQUIRE(r.status == 200);
  CHECK(r.body.rfind("PUT /upload\n", 0) == 0);
  CHECK(r.body.find("Expect") == std::string::npos);  // hop-by-hop here: answered by the proxy
  CHECK(r.body.substr(r.body.size() - 7) == "\n\nhello");
}

TEST_CASE("proxy: a body already sent with the head gets no 100 Continue") {
  Fixture f;
  RawClient c(f.port());
  c.send("PUT /upload HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello");
  WireResponse r = c.read();
  REQUIRE(r.status == 200);
  CHECK(r.body.substr(r.body.size() - 5) == "hello");
}

TEST_CASE("proxy: WebSocket upgrade passes the 101 through, then relays bytes both ways") {
  Fixture f;
  RawClient c(f.port());
  c.send("GET /ws/chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  const std::string head = c.readBytes(200);
  INFO(head);
  REQUIRE(head.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
  CHECK(head.find("Upgrade: websocket\r\n") != std::string::npos);
  CHECK(head.find("Connection: upgrade\r\n") != std::string::npos);
  CHECK(head.find("Sec-WebSocket-Accept: x\r\n") != std::string::npos);
  for (int i = 0; i < 3; ++i) {
    const std::string frame = "\x81\x05hell" + std::to_string(i);
    c.send(frame);
    CHECK(c.readBytes(frame.size()) == frame);
  }
  ::shutdown(c.fd(), SHUT_WR);
  CHECK(c.closedByPeer());
  CHECK(f.proxy->stats().totals().upgraded_total == 1);
}

TEST_CASE("proxy: an upstream answering before the body is sent is not stalled") {
  Fixture f;
  RawClient c(f.port());
  // 64 MiB announced, 256 KiB sent: the upstream answers at once and never reads the rest.
  c.send("POST /early HTTP/1.1\r\nHost: h\r\nContent-Length: 67108864\r\n\r\n" +
         std::string(256 * 1024, 'b'));
  const auto t0 = std::chrono::steady_clock::now();
  WireResponse r = c.read();
  CHECK(r.status == 200);
  CHECK(r.body == "early");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
  CHECK(r.header("connection") == "close");  // the unread body rules out keep-alive
}

TEST_CASE("proxy: request and response bodies stream concurrently (chunked upload)") {
  Fixture f;
  RawClient c(f.port());
  c.send("POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  c.send("5\r\nhello\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  c.send("6\r\n world\r\n0\r\n\r\n");
  WireResponse r = c.read("POST");
  REQUIRE(r.status == 200);
  CHECK(r.body.substr(r.body.size() - 11) == "hello world");
  // The connection stays usable.
  c.send(get("/again"));
  CHECK(c.read().status == 200);
}

TEST_CASE("proxy: X-Forwarded-* from an untrusted peer are replaced") {
  Fixture f;
  RawClient c(f.port());
  c.send(get("/strip/x?q=1", "X-Real-IP: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n"
                             "X-Forwarded-Host: evil.test\r\nX-Forwarded-Port: 1\r\n"
                             "X-Forwarded-Path: /evil\r\nX-Forwarded-Prefix: /evil\r\n"
                             "Via: 1.0 client-proxy\r\n"));
  WireResponse r = c.read();
  REQUIRE(r.status == 200);
  INFO(r.body);
  CHECK(has(r.body, "X-Real-IP: 127.0.0.1"));
  CHECK(has(r.body, "X-Forwarded-For: 127.0.0.1"));
  CHECK(has(r.body, "X-Forwarded-Proto: http"));
  CHECK(has(r.body, "X-Forwarded-Host: client.test"));
  CHECK(has(r.body, "X-Forwarded-Port: " + std::to_string(f.port())));
  CHECK(has(r.body, "X-Forwarded-Path: /strip/x"));
  CHECK(has(r.body, "X-Forwarded-Prefix: /strip"));
  CHECK(has(r.body, "Via: 1.0 client-proxy, 1.1 portico/0.1.0"));
  CHECK(r.body.find("evil") == std::string::npos);
  CHECK(r.body.find("1.2.3.4") == std::string::npos);
}

TEST_CASE("proxy: trusted_ips: X-Forwarded-* and the real-IP header are believed") {
  Fixture f([](ProxyOptions& o) { o.trusted_ips = *TrustedIps::parse("10.0.0.0/8, 127.0.0.1"); });
  SECTION("X-Real-IP (default real_ip_header) and passed-through X-Forwarded-*") {
    RawClient c(f.port());
    c.send(get("/strip/x", "X-Real-IP: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n"
                           "X-Forwarded-Host: orig.test\r\nX-Forwarded-Port: 443\r\n"
                           "X-Forwarded-Path: /orig/x\r\nX-Forwarded-Prefix: /orig\r\n"));
    WireResponse r = c.read();
    REQUIRE(r.status == 200);
    INFO(r.body);
    CHECK(has(r.body, "X-Real-IP: 1.2.3.4"));
    CHECK(has(r.body, "X-Forwarded-For: 1.2.3.4"));  // no XFF sent: Kong uses remote_addr
    CHECK(has(r.body, "X-Forwarded-Proto: https"));
    CHECK(has(r.body, "X-Forwarded-Host: orig.test"));
    CHECK(has(r.body, "X-Forwarded-Port: 443"));
    CHECK(has(r.body, "X-Forwarded-Path: /orig/x"));
    CHECK(has(r.body, "X-Forwarded-Prefix: /orig"));
  }
  SECTION("a client X-Forwarded-For gets the TCP peer appended") {
    RawClient c(f.port());
    c.send(get("/", "X-Forwarded-For: 9.9.9.9\r\nX-Real-IP: 1.2.3.4\r\n"));
    WireResponse r = c.read();
    CHECK(has(r.body, "X-Forwarded-For: 9.9.9.9, 127.0.0.1"));
    CHECK(has(r.body, "X-Real-IP: 1.2.3.4"));
  }
  SECTION("X-Forwarded-Proto: https from a trusted peer satisfies an https-only route") {
    RawClient c(f.port());
    c.send(get("/secure", "X-Forwarded-Proto: https\r\n"));
    CHECK(c.read().status == 200);
    c.send(get("/secure"));
    CHECK(c.read().status == 426);
  }
}

TEST_CASE("proxy: real_ip_header X-Forwarded-For, plain and recursive") {
  SECTION("non-recursive: the last address") {
    Fixture f([](ProxyOptions& o) {
      o.trusted_ips = *TrustedIps::parse("127.0.0.1,10.0.0.0/8");
      o.real_ip_header = "X-Forwarded-For";
    });
    RawClient c(f.port());
    c.send(get("/", "X-Forwarded-For: 5.5.5.5, 10.0.0.2\r\n"));
    WireResponse r = c.read();
    CHECK(has(r.body, "X-Real-IP: 10.0.0.2"));
    CHECK(has(r.body, "X-Forwarded-For: 5.5.5.5, 10.0.0.2, 127.0.0.1"));
  }
  SECTION("recursive: the last untrusted address") {
    Fixture f([](ProxyOptions& o) {
      o.trusted_ips = *TrustedIps::parse("127.0.0.1,10.0.0.0/8");
      o.real_ip_header = "X-Forwarded-For";
      o.real_ip_recursive = true;
    });
    RawClient c(f.port());
    c.send(get("/", "X-Forwarded-For: 5.5.5.5, 10.0.0.2\r\n"));
    CHECK(has(c.read().body, "X-Real-IP: 5.5.5.5"));
  }
  SECTION("untrusted peer: the header is ignored") {
    Fixture f([](ProxyOptions& o) {
      o.trusted_ips = *TrustedIps::parse("10.0.0.0/8");
      o.real_ip_header = "X-Forwarded-For";
    });
    RawClient c(f.port());
    c.send(get("/", "X-Forwarded-For: 5.5.5.5\r\n"));
    CHECK(has(c.read().body, "X-Real-IP: 127.0.0.1"));
  }
}

TEST_CASE("proxy: limits: URI length (414), header count and head size (431)") {
  Fixture f([](ProxyOptions& o) {
    o.limits.max_uri_bytes = 256;
    o.limits.max_headers = 10;
    o.limits.max_head_bytes = 2048;
  });
  {
    RawClient c(f.port());
    c.send(get("/" + std::string(300, 'u')));
    WireResponse r = c.read();
    CHECK(r.status == 414);
    CHECK(c.closedByPeer());
  }
  {
    RawClient c(f.port());
    c.send(get("/" + std::string(200, 'u')));  // under the limit
    CHECK(c.read().status == 200);
  }
  {
    std::string many;
    for (int i = 0; i < 11; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
    RawClient c(f.port());
    c.send(get("/", many));
    CHECK(c.read().status == 431);
  }
  {
    RawClient c(f.port());
    c.send(get("/", "X-Big: " + std::string(2100, 'b') + "\r\n"));
    CHECK(c.read().status == 431);
  }
}

TEST_CASE("trusted_ips: parsing and matching") {
  auto t = TrustedIps::parse("10.0.0.0/8, ::1, 192.168.1.7");
  REQUIRE(t.ok());
  CHECK(t->contains("10.255.0.1"));
  CHECK_FALSE(t->contains("11.0.0.1"));
  CHECK(t->contains("::1"));
  CHECK(t->contains("192.168.1.7"));
  CHECK_FALSE(t->contains("192.168.1.8"));
  CHECK_FALSE(t->contains("not-an-ip"));
  CHECK(TrustedIps::parse("0.0.0.0/0,::/0")->contains("203.0.113.9"));
  CHECK_FALSE(TrustedIps::parse("10.0.0.0/33").ok());
  CHECK_FALSE(TrustedIps::parse("nonsense").ok());
}

TEST_CASE("proxy: Kong-Debug: 1 adds route/service headers when allowed") {
  SECTION("allowed") {
    Fixture f([](ProxyOptions& o) { o.allow_debug_header = true; });
    RawClient c(f.port());
    c.send(get("/x", "Kong-Debug: 1\r\n"));
    WireResponse r = c.read();
    REQUIRE(r.status == 200);
    CHECK(r.header("Kong-Route-Id") == "r-up");
    CHECK(r.header("Kong-Route-Name") == "r-up");
    CHECK(r.header("Kong-Service-Id") == "up");
    CHECK(r.header("Kong-Service-Name") == "up-name");
    c.send(get("/x"));
    CHECK(c.read().header("Kong-Route-Id").empty());
  }
  SECTION("not allowed (default)") {
    Fixture f;
    RawClient c(f.port());
    c.send(get("/x", "Kong-Debug: 1\r\n"));
    CHECK(c.read().header("Kong-Route-Id").empty());
  }
}

TEST_CASE("proxy: retries: connect failures are retried service.retries times, then 502") {
  Fixture f;
  RawClient c(f.port());
  c.send(get("/dead"));
  WireResponse r = c.read();
  CHECK(r.status == 502);
  CHECK(f.proxy->stats().totals().upstream_retries_total == 3);
}

TEST_CASE("proxy: retries: a read timeout is retried for GET, never for POST") {
  Fixture f;
  const int before = f.upstream.connections();
  {
    RawClient c(f.port());
    c.send(get("/slow"));
    CHECK(c.read().status == 504);
  }
  CHECK(f.upstream.connections() - before == 3);  // first try + 2 retries
  const int mid = f.upstream.connections();
  {
    RawClient c(f.port());
    c.send("POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi");
    CHECK(c.read("POST").status == 504);
  }
  CHECK(f.upstream.connections() - mid == 1);
}

// A plugin recording its phases; `deny` answers 403 itself for paths starting with /deny.
struct Recorder {
  std::mutex mu;
  std::vector<std::string> events;
  void add(std::string e) {
    std::lock_guard<std::mutex> l(mu);
    events.push_back(std::move(e));
  }
  // Waits (up to 2 s) for `n` events: onLog runs after the response went out.
  std::vector<std::string> take(size_t n) {
    for (int i = 0; i < 100; ++i) {
      {
        std::lock_guard<std::mutex> l(mu);
        if (events.size() >= n) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::lock_guard<std::mutex> l(mu);
    return std::exchange(events, {});
  }
};

class TestPlugin final : public Plugin {
 public:
  explicit TestPlugin(Recorder& rec) : rec_(rec) {}
  PhaseResult onRequest(RequestContext& ctx) override {
    rec_.add("request " + std::string(ctx.path()));
    if (ctx.path().rfind("/deny", 0) == 0) {
      ctx.sendLocalReply(403, "denied by plugin");
      return PhaseResult::kStop;
    }
    ctx.setUpstreamHeader("X-Plugin", "on");
    return PhaseResult::kContinue;
  }
  PhaseResult onUpstreamRequest(RequestContext&) override {
    rec_.add("upstream");
    return PhaseResult::kContinue;
  }
  void onResponseHeaders(RequestContext& ctx) override {
    ctx.setResponseHeader("X-Plugin-Status", std::to_string(ctx.responseStatus()));
  }
  void onLog(const RequestContext& ctx) override {
    rec_.add("log " + std::to_string(ctx.responseStatus()));
  }

 private:
  Recorder& rec_;
};

class TestPluginConfig final : public PluginConfig {
 public:
  explicit TestPluginConfig(Recorder& rec) : rec_(rec) {}
  std::string_view name() const override { return "test"; }
  int32_t priority() const override { return 1000; }
  PluginPtr createPlugin() const override { return std::make_unique<TestPlugin>(rec_); }

 private:
  Recorder& rec_;
};

TEST_CASE("proxy: plugin phases run in order and onLog always runs") {
  Recorder rec;
  Fixture f({}, {std::make_shared<TestPluginConfig>(rec)});
  RawClient c(f.port());
  c.send(get("/x"));
  WireResponse r = c.read();
  REQUIRE(r.status == 200);
  CHECK(has(r.body, "X-Plugin: on"));
  CHECK(r.header("X-Plugin-Status") == "200");
  CHECK(rec.take(3) == std::vector<std::string>{"request /x", "upstream", "log 200"});

  c.send(get("/deny/me"));
  r = c.read();
  CHECK(r.status == 403);
  CHECK(r.body == "{\"message\":\"denied by plugin\"}");
  CHECK(r.header("X-Plugin-Status") == "403");
  CHECK(rec.take(2) == std::vector<std::string>{"request /deny/me", "log 403"});

  c.send(get("/dead"));
  CHECK(c.read().status == 502);
  CHECK(rec.take(3) == std::vector<std::string>{"request /dead", "upstream", "log 502"});

  // Client gone mid-request: onLog still runs.
  {
    RawClient gone(f.port());
    gone.send("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::vector<std::string> ev = rec.take(3);
  REQUIRE(ev.size() == 3);
  CHECK(ev[2] == "log 499");
}

// A global plugin with a rewrite phase: it runs before routing (also for requests no route
// matches), and the same object goes on through access, response headers and log.
class RewritePlugin final : public Plugin {
 public:
  explicit RewritePlugin(Recorder& rec) : rec_(rec) {}
  PhaseResult onRewrite(RequestContext& ctx) override {
    rewrote_ = true;
    rec_.add("rewrite " + std::string(ctx.path()));
    ctx.setUpstreamHeader("X-Rewritten", "yes");
    if (ctx.path() == "/stop-early") {
      ctx.sendLocalReply(418, "stopped in rewrite");
    }
    return PhaseResult::kContinue;
  }
  PhaseResult onRequest(RequestContext&) override {
    rec_.add(rewrote_ ? "access (same object)" : "access (new object)");
    return PhaseResult::kContinue;
  }
  void onLog(const RequestContext& ctx) override {
    rec_.add("log " + std::to_string(ctx.responseStatus()));
  }

 private:
  Recorder& rec_;
  bool rewrote_ = false;
};

class RewritePluginConfig final : public PluginConfig {
 public:
  explicit RewritePluginConfig(Recorder& rec) : rec_(rec) {}
  std::string_view name() const override { return "rewriter"; }
  int32_t priority() const override { return 5000; }
  PluginPtr createPlugin() const override { return std::make_unique<RewritePlugin>(rec_); }
  bool runsInRewrite() const override { return true; }

 private:
  Recorder& rec_;
};

TEST_CASE("proxy: the rewrite phase runs global plugins before routing, one object throughout") {
  Recorder rec;
  Fixture f({}, {std::make_shared<RewritePluginConfig>(rec)});
  RawClient c(f.port());
  c.send(get("/x"));
  WireResponse r = c.read();
  REQUIRE(r.status == 200);
  CHECK(has(r.body, "X-Rewritten: yes"));
  CHECK(rec.take(3) == std::vector<std::string>{"rewrite /x", "access (same object)", "log 200"});
  c.send(get("/stop-early"));
  r = c.read();
  CHECK(r.status == 418);
  CHECK(rec.take(2) == std::vector<std::string>{"rewrite /stop-early", "log 418"});
}

// A plugin reading the response body as it streams (Kong's body_filter).
class BodyPlugin final : public Plugin {
 public:
  explicit BodyPlugin(Recorder& rec) : rec_(rec) {}
  void onResponseBody(RequestContext&, std::string_view data, bool end) override {
    bytes_ += data.size();
    if (end) {
      ++ends_;
    }
  }
  void onLog(const RequestContext&) override {
    rec_.add("body " + std::to_string(bytes_) + " ends " + std::to_string(ends_));
  }

 private:
  Recorder& rec_;
  size_t bytes_ = 0;
  int ends_ = 0;
};

class BodyPluginConfig final : public PluginConfig {
 public:
  explicit BodyPluginConfig(Recorder& rec) : rec_(rec) {}
  std::string_view name() const override { return "body"; }
  int32_t priority() const override { return 10; }
  PluginPtr createPlugin() const override { return std::make_unique<BodyPlugin>(rec_); }
  bool wantsResponseBody() const override { return true; }

 private:
  Recorder& rec_;
};

TEST_CASE("proxy: the response body phase sees every body byte once, then the end") {
  Recorder rec;
  Fixture f({}, {std::make_shared<BodyPluginConfig>(rec)});
  RawClient c(f.port());
  c.send(get("/x"));
  WireResponse r = c.read();
  REQUIRE(r.status == 200);
  CHECK(rec.take(1) == std::vector<std::string>{"body " + std::to_string(r.body.size()) +
                                                " ends 1"});
  c.send(get("/chunked"));
  r = c.read();
  REQUIRE(r.status == 200);
  CHECK(rec.take(1) == std::vector<std::string>{"body " + std::to_string(r.body.size()) +
                                                " ends 1"});
  c.send(get("/dead"));  // a local reply (502) goes through the phase too
  r = c.read();
  CHECK(rec.take(1) == std::vector<std::string>{"body " + std::to_string(r.body.size()) +
                                                " ends 1"});
}

TEST_CASE("proxy: CONNECT is refused with 405, never tunnelled upstream") {
  Fixture f;
  RawClient c(f.port());
  c.send("CONNECT /path HTTP/1.1\r\nHost: example.com\r\n\r\n");
  WireResponse r = c.read();
  CHECK(r.status == 405);
  CHECK(r.body == R"({"message":"Method not allowed"})");
  CHECK(c.closedByPeer());
  RawClient d(f.port());  // the authority form is not even a valid origin request
  d.send("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
  CHECK(d.read().status == 400);
}

TEST_CASE("proxy: HTTP/0.9 gets a 400 at once") {
  Fixture f;
  RawClient c(f.port());
  const auto start = std::chrono::steady_clock::now();
  c.send("GET /\r\n");
  WireResponse r = c.read();
  CHECK(r.status == 400);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}

TEST_CASE("proxy: client_header_timeout covers the whole head, not each read") {
  Fixture f([](ProxyOptions& o) { o.client_header_timeout_ms = 800; });
  RawClient c(f.port());
  const std::string head = "GET /x HTTP/1.1\r\nHost: h\r\nX-Slow: abcdefghijklmnopqrstuvwxyz\r\n";
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  // One byte every 150 ms: each read is well within 800 ms, the head never is.
  for (size_t i = 0; i < head.size() && !closed; ++i) {
    try {
      c.send(head.substr(i, 1));
    } catch (...) {
      closed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    if (std::chrono::steady_clock::now() - start > std::chrono::milliseconds(1500)) {
      closed = c.closedByPeer();
      break;
    }
  }
  CHECK(closed);
}

TEST_CASE("proxy: a second proxy on a port already served refuses to start") {
  Fixture f;
  SnapshotStore store;
  ProxyOptions opts;
  opts.listen_address = "127.0.0.1";
  opts.listen_port = static_cast<uint16_t>(f.port());
  opts.workers = 2;
  auto second = ProxyServer::start(opts, store);
  REQUIRE(!second.ok());
  CHECK(std::string(second.status().message()).find("address already in use") !=
        std::string::npos);
}

TEST_CASE("proxy: graceful drain: in-flight requests on many connections all complete") {
  Fixture f;
  std::atomic<int> ok{0};
  std::atomic<int> closed{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&] {
      RawClient c(f.port());
      c.send(get("/slowok"));
      WireResponse r = c.read();
      if (r.status == 200) ++ok;
      if (r.header("connection") == "close") ++closed;
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(f.proxy->drain(std::chrono::milliseconds(5000)));
  for (auto& t : clients) t.join();
  CHECK(ok == 8);
  CHECK(closed == 8);
}

}  // namespace
}  // namespace portico::dp
