// The Admin listener against hostile clients, on a real portico-cp with --admin_auth=on: a
// body is never read before its token is accepted (hundreds of unauthenticated 1 MiB bodies
// leave the CP small), a head trickled byte by byte is cut at the header deadline, and the
// per-client and total connection caps answer 503 while the CP keeps serving.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

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

}  // namespace
