// The Admin and cluster listeners against hostile clients, on a real portico-cp. Admin (with
// --admin_auth=on): a body is never read before its token is accepted (hundreds of
// unauthenticated 1 MiB bodies leave the CP small), a head trickled byte by byte is cut at the
// header deadline, and the per-client and total connection caps answer 503 while the CP keeps
// serving. Cluster (mTLS): thousands of half-open TLS handshakes are capped at accept, a
// trickled ClientHello is cut at the handshake deadline, and real sync clients keep syncing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "data_plane/sync_client/sync_client.h"
#include "tests/support/e2e_cluster.h"
#include "tests/support/test_support.h"

namespace {

using namespace std::chrono_literals;
using namespace portico::testing;

void sendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// Everything the server sends until it closes (or 10 s pass).
std::string readAll(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

std::string tokenFor(const std::string& dsn) {
  Process p(binaryPath("portico-cp"), {"--pg_dsn=" + dsn, "admins", "create", "ops", "admin"});
  REQUIRE(p.wait(20s) == 0);
  std::smatch m;
  const std::string log = p.log();
  REQUIRE(std::regex_search(log, m, std::regex("ptk_[0-9a-f]{16}_[0-9a-f]{64}")));
  return m[0];
}

TEST_CASE("abuse: the Admin listener reads no body before the token, cuts slow heads, caps "
          "connections") {
  Postgres pg;
  migrate(pg.dsn());
  const std::string token = tokenFor(pg.dsn());
  Cp cp(pg.dsn(), {"--cluster_insecure", "--admin_auth=on", "--admin_header_timeout_ms=1500",
                   "--admin_max_connections_per_client=300", "--admin_max_connections=400"});
  auto authed = [&](const std::string& method, const std::string& path,
                    const std::string& body = "") {
    return httpRequest("127.0.0.1", cp.admin_port, method, path, body,
                       {{"Kong-Admin-Token", token}});
  };
  REQUIRE(authed("POST", "/consumers", R"({"username":"before"})").status == 201);
  const int64_t baseline = rssKb(cp.proc->pid());

  SECTION("a body without a token is never read: 401 before it is sent") {
    const int fd = connectLoopback(cp.admin_port);
    REQUIRE(fd >= 0);
    const auto t0 = std::chrono::steady_clock::now();
    sendAll(fd, "POST /consumers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000000\r\n\r\n{\"username\":");
    const std::string reply = readAll(fd);
    ::close(fd);
    CHECK(reply.rfind("HTTP/1.1 401", 0) == 0);
    CHECK(reply.find("Invalid credentials. Token or User credentials required") !=
          std::string::npos);
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    // A wrong token: the same, after one lookup.
    const int fd2 = connectLoopback(cp.admin_port);
    sendAll(fd2, "POST /consumers HTTP/1.1\r\nHost: x\r\nKong-Admin-Token: ptk_0000000000000000_"
                 "00\r\nContent-Length: 1000000\r\n\r\n{");
    CHECK(readAll(fd2).rfind("HTTP/1.1 401", 0) == 0);
    ::close(fd2);
  }

  SECTION("250 unauthenticated connections pushing 1 MiB bodies leave the CP under 100 MB") {
    std::vector<int> fds;
    const std::string chunk(64 << 10, 'a');
    for (int i = 0; i < 250; ++i) {
      const int fd = connectLoopback(cp.admin_port);
      REQUIRE(fd >= 0);
      sendAll(fd, "POST /services HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  "Content-Length: 1048576\r\n\r\n");
      ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      fds.push_back(fd);
    }
    int refused = 0;
    for (int fd : fds) {
      refused += readAll(fd).rfind("HTTP/1.1 401", 0) == 0 ? 1 : 0;
      ::close(fd);
    }
    CHECK(refused == 250);
    const int64_t peak = rssKb(cp.proc->pid());
    std::printf("abuse: CP RSS %lld kB before, %lld kB after 250 unauthenticated 1 MiB bodies\n",
                static_cast<long long>(baseline), static_cast<long long>(peak));
    CHECK(peak < 100 * 1024);
    CHECK(authed("GET", "/consumers/before").status == 200);
  }

  SECTION("a head trickled one byte at a time is cut at the header deadline") {
    const int fd = connectLoopback(cp.admin_port);
    REQUIRE(fd >= 0);
    const std::string head = "GET /consumers HTTP/1.1\r\nHost: x\r\nX-Slow: " +
                             std::string(200, 'z') + "\r\n\r\n";
    const auto t0 = std::chrono::steady_clock::now();
    bool cut = false;
    for (char c : head) {
      if (::send(fd, &c, 1, MSG_NOSIGNAL) <= 0) {
        cut = true;
        break;
      }
      std::this_thread::sleep_for(50ms);
      char probe;
      const ssize_t n = ::recv(fd, &probe, 1, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        cut = true;
        break;
      }
      if (std::chrono::steady_clock::now() - t0 > 8s) break;
    }
    ::close(fd);
    CHECK(cut);
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(took >= 1400ms);
    CHECK(took < 4s);
    CHECK(authed("GET", "/consumers/before").status == 200);
  }

  SECTION("connections beyond the per-client cap get 503 and are closed; normal service after") {
    std::vector<int> idle;
    for (int i = 0; i < 300; ++i) {
      const int fd = connectLoopback(cp.admin_port);
      REQUIRE(fd >= 0);
      idle.push_back(fd);
    }
    REQUIRE(waitFor([&] {
      const int fd = connectLoopback(cp.admin_port);
      const std::string reply = fd >= 0 ? readAll(fd) : "";
      if (fd >= 0) ::close(fd);
      return reply.rfind("HTTP/1.1 503", 0) == 0 &&
             reply.find("Too many open connections") != std::string::npos;
    }, 5s));
    for (int fd : idle) ::close(fd);
    CHECK(waitFor([&] { return authed("GET", "/consumers/before").status == 200; }, 5s));
    CHECK(rssKb(cp.proc->pid()) < 100 * 1024);
  }

  CHECK(cp.proc->running());
}

// A TCP connection to 127.0.0.1:`port` from `source` (any 127/8 address is local): the
// cluster listener's caps count per client address.
int connectFrom(const char* source, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &a.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{0, 200 * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// The start of a TLS ClientHello: a record header and the handshake header, no more.
const std::string kPartialHello("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);

// A real DP's sync client (mTLS, shared mode) from start to its first applied snapshot, ms.
double syncOnceMs(int cluster_port, const std::string& dir) {
  portico::dp::SyncClient::Options o;
  o.cp_address = "127.0.0.1:" + std::to_string(cluster_port);
  o.mtls = portico::sync::ClusterMtls::kShared;
  o.cert_path = dir + "/cluster.crt";
  o.key_path = dir + "/cluster.key";
  o.node_id = "abuse-probe";
  o.version = "0.1.0";
  o.backoff_initial_ms = 50;
  o.backoff_max_ms = 200;
  std::atomic<bool> applied{false};
  portico::dp::SyncClient client(std::move(o), [&](const portico::config::v1::Snapshot&,
                                                   const std::string&,
                                                   portico::config::FieldErrors*) {
    applied = true;
    return absl::OkStatus();
  });
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(client.start().ok());
  REQUIRE(waitFor([&] { return applied.load(); }, 20s));
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  client.stop();
  return ms;
}

double maxOf(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

TEST_CASE("abuse: the cluster listener caps unauthenticated connections, cuts slow TLS "
          "handshakes and keeps syncing data planes") {
  if (std::system("command -v openssl >/dev/null 2>&1") != 0) {
    WARN("openssl CLI not found; skipping the cluster listener abuse test");
    return;
  }
  TempDir dir;
  REQUIRE(std::system(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                       "-nodes -keyout " + dir.path + "/cluster.key -out " + dir.path +
                       "/cluster.crt -days 2 -subj /CN=kong_clustering >/dev/null 2>&1")
                          .c_str()) == 0);
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn(), {"--cluster_cert=" + dir.path + "/cluster.crt",
                   "--cluster_key=" + dir.path + "/cluster.key", "--cluster_mtls=shared",
                   "--cluster_handshake_timeout_ms=2000"});
  REQUIRE(cp.admin("POST", "/services", R"({"name":"s","host":"a.test"})").status == 201);
  const int64_t baseline_rss = rssKb(cp.proc->pid());

  // Baseline: a DP's whole sync (TCP, TLS with client certificate, Hello, snapshot).
  std::vector<double> before;
  for (int i = 0; i < 15; ++i) before.push_back(syncOnceMs(cp.cluster_port, dir.path));

  // 9,000 connections from one address, each sending half a ClientHello and holding it.
  // Before the caps, this took the CP to 440 MB (~47 KB of TLS state each).
  std::vector<int> flood;
  for (int i = 0; i < 9000; ++i) {
    const int fd = connectFrom("127.0.0.2", cp.cluster_port);
    if (fd < 0) break;
    ::send(fd, kPartialHello.data(), kPartialHello.size(), MSG_NOSIGNAL);
    flood.push_back(fd);
  }
  REQUIRE(flood.size() == 9000);
  std::this_thread::sleep_for(500ms);
  const int64_t flood_rss = rssKb(cp.proc->pid());
  INFO("CP RSS: " << baseline_rss << " KB before, " << flood_rss << " KB under the flood");
  CHECK(flood_rss < 100 * 1024);
  // All but the per-client cap (128) were closed at accept: a read sees the close.
  int closed = 0;
  char byte;
  for (int fd : flood) {
    // FIN, or RST when the CP closed with our unread bytes in its buffer.
    const ssize_t n = ::recv(fd, &byte, 1, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) ++closed;
  }
  CHECK(closed >= 9000 - 128);

  // DPs from another address still sync, as fast as before (p99 within 2x, 50 ms floor).
  std::vector<double> during;
  for (int i = 0; i < 15; ++i) during.push_back(syncOnceMs(cp.cluster_port, dir.path));
  INFO("sync ms, max of 15: " << maxOf(before) << " before, " << maxOf(during) << " during");
  CHECK(maxOf(during) <= 2 * maxOf(before) + 50);

  // A ClientHello trickled a byte every 100 ms is cut at the handshake deadline (2 s).
  const int slow = connectFrom("127.0.0.3", cp.cluster_port);
  REQUIRE(slow >= 0);
  const auto t0 = std::chrono::steady_clock::now();
  bool cut = false;
  for (int i = 0; i < 60 && !cut; ++i) {
    const ssize_t n = ::recv(slow, &byte, 1, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno == ECONNRESET) ||
        ::send(slow, kPartialHello.data() + (i % kPartialHello.size()), 1, MSG_NOSIGNAL) < 0) {
      cut = true;
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  const auto took = std::chrono::steady_clock::now() - t0;
  ::close(slow);
  CHECK(cut);
  CHECK(took < 4s);

  // The held ones time out too, and the memory goes back.
  for (int fd : flood) ::close(fd);
  REQUIRE(waitFor([&] { return rssKb(cp.proc->pid()) < baseline_rss + 16 * 1024; }, 10s));
  REQUIRE(cp.proc->running());
  CHECK(syncOnceMs(cp.cluster_port, dir.path) < 5000);
}

}  // namespace
