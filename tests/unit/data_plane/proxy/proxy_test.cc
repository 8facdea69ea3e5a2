// The proxy engine on real sockets: a ProxyServer in-process, a scripted upstream on port 0,
// and raw clients sending exact bytes.
#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include "data_plane/proxy/proxy_server.h"
#include "data_plane/status/status_server.h"
#include "tests/unit/data_plane/proxy/wire.h"

namespace portico::dp {
namespace {

using testing::RawClient;
using testing::ScriptedUpstream;
using testing::WireResponse;

config::v1::Service* addService(config::v1::Snapshot* s, const std::string& id, int port,
                                int read_timeout_ms = 5000) {
  auto* svc = s->add_services();
  svc->set_id(id);
  svc->set_protocol("http");
  svc->set_host("127.0.0.1");
  svc->set_port(port);
  svc->set_enabled(true);
  svc->set_connect_timeout(2000);
  svc->set_read_timeout(read_timeout_ms);
  svc->set_write_timeout(5000);
  return svc;
}

config::v1::Route* addRoute(config::v1::Snapshot* s, const std::string& id, const std::string& path,
                            const std::string& service_id) {
  auto* r = s->add_routes();
  r->set_id(id);
  r->set_name(id);
  r->add_protocols("http");
  r->add_protocols("https");
  r->add_paths(path);
  r->set_strip_path(true);
  if (!service_id.empty()) r->set_service_id(service_id);
  return r;
}

// One engine with the standard routes of these tests.
struct Fixture {
  ScriptedUpstream upstream;
  SnapshotStore store;
  std::unique_ptr<ProxyServer> proxy;

  explicit Fixture(uint32_t workers = 2, http::Limits limits = http::Limits()) {
    config::v1::Snapshot cfg;
    cfg.set_generation(7);
    addService(&cfg, "up", upstream.port());
    addService(&cfg, "slow", upstream.port(), /*read_timeout_ms=*/300);
    addService(&cfg, "dead", testing::closedPort());
    addRoute(&cfg, "r-up", "/up", "up");
    addRoute(&cfg, "r-keep", "/keep", "up")->set_strip_path(false);
    addRoute(&cfg, "r-slow", "/slowsvc", "slow")->set_strip_path(false);
    addRoute(&cfg, "r-dead", "/dead", "dead");
    addRoute(&cfg, "r-nosvc", "/nosvc", "");
    auto* https_only = addRoute(&cfg, "r-https", "/secure", "up");
    https_only->clear_protocols();
    https_only->add_protocols("https");
    https_only->set_https_redirect_status_code(426);
    auto* redirect = addRoute(&cfg, "r-redirect", "/moved", "up");
    redirect->clear_protocols();
    redirect->add_protocols("https");
    redirect->set_https_redirect_status_code(308);
    auto preserve = addRoute(&cfg, "r-preserve", "/preserve", "up");
    preserve->set_preserve_host(true);
    auto snap = Snapshot::build(cfg, "hash-7");
    REQUIRE(snap.ok());
    store.set(*snap);
    ProxyOptions opts;
    opts.listen_address = "127.0.0.1";
    opts.listen_port = 0;
    opts.workers = workers;
    opts.limits = limits;
    auto started = ProxyServer::start(opts, store);
    REQUIRE(started.ok());
    proxy = std::move(*started);
  }
  int port() const { return proxy->port(); }
};

std::string get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: client.test:8000\r\n" + extra + "\r\n";
}

TEST_CASE("proxy: GET is forwarded with Kong's upstream headers") {
  Fixture f;
  RawClient c(f.port());
  c.send(get("/up/a/b?x=1", "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n"
                            "Connection: keep-alive, X-Hop\r\nX-Hop: secret\r\n"));
  WireResponse r = c.read();
  REQUIRE(r.status == 200);
  INFO(r.body);
  CHECK(r.body.rfind("GET /a/b?x=1\n", 0) == 0);
  CHECK(r.body.find("Host: 127.0.0.1:" + std::to_string(f.upstream.port()) + "\n") !=
        std::string::npos);
  CHECK(r.body.find("X-Forwarded-For: 10.0.0.1, 127.0.0.1\n") != std::string::npos);
  CHECK(r.body.find("X-Real-IP: 127.0.0.1\n") != std::string::npos);
  CHECK(r.body.find("X-Forwarded-Proto: http\n") != std::string::npos);
  CHECK(r.body.find("X-Forwarded-Host: client.test\n") != std::string::npos);
  CHECK(r.body.find("X-Forwarded-Port: " + std::to_string(f.port()) + "\n") != std::string::npos);
  CHECK(r.body.find("X-Forwarded-Path: /up/a/b\n") != std::string::npos);
  CHECK(r.body.find("X-Forwarded-Prefix: /up\n") != std::string::npos);
  CHECK(r.body.find("Via: 1.1 portico/0.1.0\n") != std::string::npos);
  CHECK(r.body.find("X-Hop") == std::string::npos);  // nominated by Connection: hop-by-hop
  CHECK(r.header("via") == "1.1 portico/0.1.0");
}

TEST_CASE("proxy: preserve_host sends the client's Host") {
  Fixture f;
  RawClient c(f.port());
  c.send(get("/preserve"));
  WireResponse r = c.read();
  REQUIRE(r.status == 200);
  CHECK(r.body.find("Host: client.test:8000\n") != std::string::npos);
}

TEST_CASE("proxy: request bodies stream with Content-Length and chunked") {
  Fixture f;
  RawClient c(f.port());
  c.send("POST /up/post HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world");
  WireResponse r = c.read();
  REQUIRE(r.status == 200);
  CHECK(r.body.find("Content-Length: 11\n") != std::string::npos);
  CHECK(r.body.substr(r.body.size() - 11) == "hello world");

  // Chunked, split over several writes, with an extension and a trailer: re-encoded upstream.
  c.send("POST /up/post-chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhel");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  c.send("lo\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n");
  r = c.read();
  REQUIRE(r.status == 200);
  CHECK(r.body.find("Transfer-Encoding: chunked\n") != std::string::npos);
  CHECK(r.body.substr(r.body.size() - 11) == "hello world");

  // A large body (1 MiB) crosses many buffer refills both ways.
  const std::string big(1 << 20, 'b');
  c.send("POST /up/post-big HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(big.size()) +
         "\r\n\r\n" + big);
  r = c.read();
  REQUIRE(r.status == 200);
  CHECK(r.body.size() > big.size());
  c.send(get("/up/big"));
  r = c.read();
  REQUIRE(r.status == 200);
  CHECK(r.body == std::string(1 << 20, 'x'));
}

TEST_CASE("proxy: chunked and close-delimited responses") {
  Fixture f;
  RawClient c(f.port());
  c.send(get("/up/chunked"));
  WireResponse r = c.read();
  REQUIRE(r.status == 200);
  CHECK(r.chunked);
  CHECK(r.body == "hello world");
  CHECK(r.header("x-up") == "1");
  // Body until close upstream -> chunked to an HTTP/1.1 client, which keeps its connection.
  c.send(get("/up/close"));
  r = c.read();
  REQUIRE(r.status == 200);
  CHECK(r.chunked);
  CHECK(r.body == "until-close body");
  c.send(get("/up/again"));
  CHECK(c.read().status == 200);
  // HTTP/1.0 client: no chunked; the close ends the body.
  RawClient c10(f.port());
  c10.send("GET /up/chunked HTTP/1.0\r\n\r\n");
  r = c10.read();
  REQUIRE(r.status == 200);
  CHECK_FALSE(r.chunked);
  CHECK(r.body == "hello world");
}

TEST_CASE("proxy: client and upstream keep-alive are reused") {
  Fixture f(/*workers=*/1);
  RawClient c(f.port());
  for (int i = 0; i < 5; ++i) {
    c.send(get("/keep/" + std::to_string(i)));
    WireResponse r = c.read();
    REQUIRE(r.status == 200);
    CHECK(r.body.rfind("GET /keep/" + std::to_string(i), 0) == 0);
  }
  CHECK(f.upstream.connections() == 1);
  CHECK(f.proxy->stats().totals().upstream_reused_total == 4);
  CHECK(f.proxy->stats().totals().connections_accepted == 1);
}

TEST_CASE("proxy: pipelined requests are answered in order") {
  Fixture f;
  RawClient c(f.port());
  c.send(get("/up/1") + "POST /up/2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc" +
         get("/nothing-here") + get("/up/4"));
  WireResponse r1 = c.read();
  WireResponse r2 = c.read("POST");
  WireResponse r3 = c.read();
  WireResponse r4 = c.read();
  CHECK(r1.body.rfind("GET /1\n", 0) == 0);
  CHECK(r2.body.rfind("POST /2\n", 0) == 0);
  CHECK(r2.body.substr(r2.body.size() - 3) == "abc");
  CHECK(r3.status == 404);
  CHECK(r4.body.rfind("GET /4\n", 0) == 0);
}

TEST_CASE("proxy: Kong error responses") {
  Fixture f;
  {
    RawClient c(f.port());
    c.send(get("/nothing"));
    WireResponse r = c.read();
    CHECK(r.status == 404);
    CHECK(r.body == R"({"message":"no Route matched with those values"})");
    CHECK(r.header("content-type") == "application/json; charset=utf-8");
    c.send(get("/nosvc"));  // same connection: local replies keep it alive
    r = c.read();
    CHECK(r.status == 503);
    CHECK(r.body == R"({"message":"no Service found with those values"})");
  }
  {
    RawClient c(f.port());
    c.send(get("/dead"));
    WireResponse r = c.read();
    CHECK(r.status == 502);
    CHECK(r.body == R"({"message":"An invalid response was received from the upstream server"})");
  }
  {
    RawClient c(f.port());
    c.send(get("/slowsvc/slow"));
    WireResponse r = c.read();
    CHECK(r.status == 504);
    CHECK(r.body == R"({"message":"The upstream server is timed out"})");
  }
  const ProxyTotals t = f.proxy->stats().totals();
  CHECK(t.no_route_total == 1);
  CHECK(t.upstream_connect_errors_total == 1);
  CHECK(t.upstream_timeouts_total == 1);
}

TEST_CASE("proxy: https-only routes over http get 426 or the configured redirect") {
  Fixture f;
  RawClient c(f.port());
  c.send(get("/moved/x?y=1"));
  WireResponse r = c.read();
  CHECK(r.status == 308);
  CHECK(r.header("location") == "https://client.test/moved/x?y=1");
  c.send(get("/secure"));
  r = c.read();
  CHECK(r.status == 426);
  CHECK(r.body == R"({"message":"Please use HTTPS protocol"})");
  CHECK(r.header("upgrade") == "TLS/1.2, HTTP/1.1");
  CHECK(r.header("connection") == "Upgrade");
}

TEST_CASE("proxy: bad requests get 400/431 and the connection is closed") {
  http::Limits limits;
  limits.max_head_bytes = 4096;
  Fixture f(2, limits);
  {
    RawClient c(f.port());
    c.send("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
           "0\r\n\r\nGET /up/smuggled HTTP/1.1\r\nHost: h\r\n\r\n");
    WireResponse r = c.read();
    CHECK(r.status == 400);
    CHECK(r.header("connection") == "close");
    CHECK(c.closedByPeer());
  }
  {
    RawClient c(f.port());
    c.send("GET /up HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(8000, 'a') + "\r\n\r\n");
    WireResponse r = c.read();
    CHECK(r.status == 431);
    CHECK(c.closedByPeer());
  }
  {
    RawClient c(f.port());
    c.send("GET /up HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n");
    CHECK(c.read().status == 400);
  }
  {
    // A bad chunk size inside a proxied body: 400, and nothing smuggled upstream.
    RawClient c(f.port());
    c.send("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    CHECK(c.read().status == 400);
  }
  CHECK(f.proxy->stats().totals().bad_requests_total == 4);
}

TEST_CASE("proxy: graceful drain lets the in-flight request finish") {
  Fixture f(1);
  RawClient idle(f.port());
  idle.send(get("/up/warm"));
  REQUIRE(idle.read().status == 200);
  RawClient busy(f.port());
  busy.send(get("/slowsvc/slow-ok").replace(0, 0, ""));  // 1.5 s upstream vs 300 ms timeout
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::thread drainer([&] { CHECK(f.proxy->drain(std::chrono::seconds(5))); });
  CHECK(idle.closedByPeer());  // idle keep-alive connection closed at once
  WireResponse r = busy.read();
  CHECK(r.status == 504);      // answered (by its timeout), not dropped
  drainer.join();
}

TEST_CASE("status: /status, /status/ready and /metrics") {
  SnapshotStore store;
  ProxyStats stats(2);
  StatusOptions opts;
  opts.listen_port = 0;
  auto server = StatusServer::start(opts, store, &stats);
  REQUIRE(server.ok());
  RawClient c((*server)->port());
  c.send("GET /status/ready HTTP/1.1\r\nHost: s\r\n\r\n");
  CHECK(c.read().status == 503);
  c.send("GET /status HTTP/1.1\r\nHost: s\r\n\r\n");
  WireResponse r = c.read();
  CHECK(r.status == 200);
  CHECK(r.body.find("\"generation\":0") != std::string::npos);

  config::v1::Snapshot cfg;
  cfg.set_generation(42);
  store.set(*Snapshot::build(cfg, "abc"));
  WorkerStats::inc(stats.shard(0).requests_total, 3);
  WorkerStats::inc(stats.shard(1).requests_total, 4);
  c.send("GET /status/ready HTTP/1.1\r\nHost: s\r\n\r\n");
  r = c.read();
  CHECK(r.status == 200);
  CHECK(r.body == R"({"status":"ready"})");
  c.send("GET /status HTTP/1.1\r\nHost: s\r\n\r\n");
  r = c.read();
  CHECK(r.body.find("\"generation\":42,\"config_hash\":\"abc\"") != std::string::npos);
  CHECK(r.body.find("\"requests_total\":7") != std::string::npos);
  c.send("GET /metrics HTTP/1.1\r\nHost: s\r\n\r\n");
  r = c.read();
  CHECK(r.status == 200);
  CHECK(r.body.find("portico_dp_requests_total 7") != std::string::npos);
  CHECK(r.body.find("portico_dp_config_generation 42") != std::string::npos);
}

}  // namespace
}  // namespace portico::dp
