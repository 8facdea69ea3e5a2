// Hot reload under load: snapshots (router with ~2,000 routes, services, certificates) are
// swapped 10 times a second for 30 s (PORTICO_RELOAD_SECONDS overrides) while keep-alive HTTP
// clients and TLS clients send requests; not one may fail. Also: a request in flight finishes
// on the snapshot it started with even when the next snapshot removes its route.
#include <openssl/ssl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "data_plane/proxy/proxy_server.h"
#include "data_plane/tls/tls.h"
#include "tests/unit/data_plane/proxy/wire.h"

namespace portico::dp {
namespace {

using testing::RawClient;
using testing::ScriptedUpstream;
using testing::WireResponse;

config::v1::Snapshot makeConfig(uint64_t generation, int upstream_port, bool with_only_a,
                                const std::pair<std::string, std::string>& cert) {
  config::v1::Snapshot cfg;
  cfg.set_generation(generation);
  auto* svc = cfg.add_services();
  svc->set_id("svc");
  svc->set_protocol("http");
  svc->set_host("127.0.0.1");
  svc->set_port(upstream_port);
  svc->set_enabled(true);
  svc->set_connect_timeout(2000);
  svc->set_read_timeout(5000);
  svc->set_write_timeout(5000);
  auto route = [&](const std::string& id, const std::string& host, const std::string& path) {
    auto* r = cfg.add_routes();
    r->set_id(id);
    r->add_protocols("http");
    r->add_protocols("https");
    if (!host.empty()) r->add_hosts(host);
    r->add_paths(path);
    r->set_strip_path(false);
    r->set_service_id("svc");
  };
  route("00000000-0000-4000-8000-000000000001", "", "/api");
  if (with_only_a) {
    route("00000000-0000-4000-8000-000000000002", "", "/slowonly");
  }
  // A table that differs per generation, so every swap really rebuilds the router.
  for (int i = 0; i < 2000; ++i) {
    char id[40];
    std::snprintf(id, sizeof(id), "10000000-0000-4000-8000-%012d", i);
    route(id, absl::StrCat("h", i, ".test"), absl::StrCat("/g", generation % 7, "/r", i));
  }
  auto* c = cfg.add_certificates();
  c->set_id("cert");
  c->set_cert(cert.first);
  c->set_key(cert.second);
  auto* sni = cfg.add_snis();
  sni->set_name("reload.test");
  sni->mutable_certificate()->set_id("cert");
  return cfg;
}

struct Fixture {
  ScriptedUpstream upstream;
  SnapshotStore store;
  std::unique_ptr<ProxyServer> proxy;
  std::pair<std::string, std::string> cert = *tls::generateSelfSigned("reload.test");
  Fixture() {
    auto snap = Snapshot::build(makeConfig(1, upstream.port(), true, cert), "g1");
    REQUIRE(snap.ok());
    store.set(*snap);
    ProxyOptions opts;
    opts.listen_address = "127.0.0.1";
    opts.listen_port = 0;
    opts.ssl_enabled = true;
    opts.ssl_listen_address = "127.0.0.1";
    opts.ssl_listen_port = 0;
    opts.workers = 2;
    auto started = ProxyServer::start(opts, store);
    REQUIRE(started.ok());
    proxy = std::move(*started);
  }
};

TEST_CASE("reload: a request in flight finishes on the snapshot it started with") {
  Fixture f;
  RawClient c(f.proxy->port());
  // /slowonly exists only in generation 1; the upstream takes 1.5 s ("/slow" prefix).
  c.send("GET /slowonly HTTP/1.1\r\nHost: h\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto next = Snapshot::build(makeConfig(2, f.upstream.port(), false, f.cert), "g2");
  REQUIRE(next.ok());
  f.store.set(*next);
  WireResponse r = c.read();
  CHECK(r.status == 200);
  // The next request on the same connection sees the new snapshot.
  c.send("GET /slowonly HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(c.read().status == 404);
}

TEST_CASE("reload: 10 swaps per second under load, zero failed requests") {
  Fixture f;
  int seconds = 30;
  if (const char* env = std::getenv("PORTICO_RELOAD_SECONDS")) seconds = std::atoi(env);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> ok{0}, failed{0}, tls_ok{0}, tls_failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      auto c = std::make_unique<RawClient>(f.proxy->port());
      while (!stop) {
        c->send("GET /api/items HTTP/1.1\r\nHost: h\r\n\r\n");
        WireResponse r = c->read();
        if (r.status == 200) {
          ++ok;
        } else {
          ++failed;
        }
        if (r.status == 0 || r.header("connection") == "close") {
          c = std::make_unique<RawClient>(f.proxy->port());
        }
      }
    });
  }
  // TLS: a new handshake per request, so certificate lookups race with the swaps.
  clients.emplace_back([&] {
    while (!stop) {
      testing::RawClient probe(f.proxy->tlsPort());  // plain TCP connect check only
      (void)probe;
      SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
      SSL* ssl = SSL_new(ctx);
      int fd = ::dup(probe.fd());
      SSL_set_fd(ssl, fd);
      SSL_set_tlsext_host_name(ssl, "reload.test");
      bool good = false;
      if (SSL_connect(ssl) == 1) {
        const std::string req = "GET /api/tls HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
        SSL_write(ssl, req.data(), static_cast<int>(req.size()));
        std::string resp;
        char buf[4096];
        for (int n; (n = SSL_read(ssl, buf, sizeof(buf))) > 0;) resp.append(buf, static_cast<size_t>(n));
        good = resp.rfind("HTTP/1.1 200", 0) == 0;
      }
      SSL_free(ssl);
      SSL_CTX_free(ctx);
      ::close(fd);
      good ? ++tls_ok : ++tls_failed;
    }
  });
  const auto start = std::chrono::steady_clock::now();
  uint64_t generation = 2;
  int swaps = 0;
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(seconds)) {
    const auto tick = std::chrono::steady_clock::now();
    auto snap = Snapshot::build(makeConfig(generation, f.upstream.port(), generation % 2 == 0,
                                           f.cert),
                                absl::StrCat("g", generation));
    REQUIRE(snap.ok());
    f.store.set(*snap);
    ++generation;
    ++swaps;
    std::this_thread::sleep_until(tick + std::chrono::milliseconds(100));
  }
  stop = true;
  for (auto& t : clients) t.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  WARN("reload: " << swaps << " swaps in " << secs << " s; " << ok << " HTTP ok, " << failed
                  << " failed; " << tls_ok << " TLS ok, " << tls_failed << " failed");
  // The loop aims at 10 swaps a second; a slow build (ASan, a loaded machine) gets fewer.
  // What matters is that many swaps happened under load with no failed request, not the rate.
  CHECK(swaps >= seconds * 3);
  CHECK(failed == 0);
  CHECK(tls_failed == 0);
  CHECK(ok > 0);
  CHECK(tls_ok > 0);
  CHECK(f.store.get()->generation() == generation - 1);
}

}  // namespace
}  // namespace portico::dp
