// Streamed Admin API answers (ApiResponse::stream, admin_api/body_stream.h) over real HTTP:
// chunked for HTTP/1.1 with keep-alive kept, one Content-Length body for HTTP/1.0, a producer
// error after the head ends the answer without its final chunk, and a client that goes away
// mid-answer stops the producer. The handler stands in for /vitals/requests (the only
// streamed endpoint), so the transport is tested apart from vitals' data.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "control_plane/admin_api/http_server.h"
#include "control_plane/store/migrations.h"
#include "control_plane/store/pg_store_impl.h"
#include "tests/support/test_support.h"

namespace portico::cp {
namespace {

using namespace std::chrono_literals;

// Piece i of the body: `size` bytes of one letter; piece 3 is empty (must not end the body).
std::string piece(int i, size_t size) {
  return i == 3 ? std::string() : std::string(size, static_cast<char>('a' + i % 26));
}

struct Fixture {
  testing::TestPostgres pg;
  std::unique_ptr<PgConfigStore> store;
  std::unique_ptr<AdminHttpServer> admin;
  std::atomic<int> produced{0};
  std::atomic<int> fail_after{-1};   // >= 0: the producer fails after this many pieces
  std::atomic<int> pieces{40};
  std::atomic<size_t> piece_size{100 << 10};

  Fixture() {
    REQUIRE(migrateUp(pg.dsn()).ok());
    auto s = PgConfigStore::open({pg.dsn(), 2});
    REQUIRE(s.ok());
    store = std::move(*s);
    AdminServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.vitals = [this](const std::string&, const std::string&,
                            const std::vector<std::string>&,
                            const std::map<std::string, std::string>&) {
      auto next = std::make_shared<int>(0);
      ApiResponse r;
      r.stream = [this, next](std::string* chunk, bool* last) -> absl::Status {
        if (fail_after >= 0 && *next >= fail_after) {
          return absl::DataLossError("the producer broke");
        }
        chunk->append(piece(*next, piece_size));
        ++*next;
        ++produced;
        *last = *next >= pieces;
        return absl::OkStatus();
      };
      return r;
    };
    auto a = AdminHttpServer::start(*store, options);
    REQUIRE(a.ok());
    admin = std::move(*a);
  }
  ~Fixture() { admin->shutdown(); }

  std::string expected() const {
    std::string body;
    for (int i = 0; i < pieces; ++i) body += piece(i, piece_size);
    return body;
  }
};

void sendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// Reads until `until` appears in what was read, the peer closes, or the receive timeout.
std::string readUntil(int fd, const std::string& until) {
  std::string out;
  char buf[65536];
  size_t from = 0;  // `until` is not in out before this
  while (out.find(until, from) == std::string::npos) {
    from = out.size() >= until.size() ? out.size() - until.size() + 1 : 0;
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

TEST_CASE("a streamed answer is chunked over HTTP/1.1 and the connection stays usable") {
  Fixture f;
  const testing::HttpResponse r =
      testing::httpRequest("127.0.0.1", f.admin->port(), "GET", "/vitals/requests", "", {});
  REQUIRE(r.status == 200);
  CHECK(r.headers.at("transfer-encoding") == "chunked");
  CHECK(r.headers.count("content-length") == 0);
  CHECK(r.headers.at("content-type").rfind("application/json", 0) == 0);
  CHECK(r.body.size() == f.expected().size());
  CHECK(r.body == f.expected());

  // Keep-alive: the terminating chunk comes, then the next request on the same connection.
  const int fd = testing::connectLoopback(f.admin->port());
  REQUIRE(fd >= 0);
  f.pieces = 5;
  f.piece_size = 10;
  sendAll(fd, "GET /vitals/requests HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string first = readUntil(fd, "\r\n0\r\n\r\n");
  CHECK(first.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(first.find("\r\n0\r\n\r\n") != std::string::npos);
  sendAll(fd, "GET /vitals/requests HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const std::string second = readUntil(fd, "\r\n0\r\n\r\n");
  CHECK(second.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(second.find("aaaaaaaaaa") != std::string::npos);
  ::close(fd);
}

TEST_CASE("a streamed answer to HTTP/1.0 is one body with a Content-Length") {
  Fixture f;
  f.pieces = 12;
  const int fd = testing::connectLoopback(f.admin->port());
  REQUIRE(fd >= 0);
  sendAll(fd, "GET /vitals/requests HTTP/1.0\r\nHost: x\r\n\r\n");
  const std::string reply = readUntil(fd, "\x01never");  // HTTP/1.0: read until the close
  ::close(fd);
  REQUIRE(reply.rfind("HTTP/1.0 200", 0) == 0);
  const size_t head_end = reply.find("\r\n\r\n");
  REQUIRE(head_end != std::string::npos);
  const std::string head = reply.substr(0, head_end);
  CHECK(head.find("Content-Length: " + std::to_string(f.expected().size())) != std::string::npos);
  CHECK(head.find("chunked") == std::string::npos);
  CHECK(reply.substr(head_end + 4) == f.expected());
}

TEST_CASE("a producer error after the head ends the answer without its final chunk") {
  Fixture f;
  f.fail_after = 4;
  const int fd = testing::connectLoopback(f.admin->port());
  REQUIRE(fd >= 0);
  sendAll(fd, "GET /vitals/requests HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto t0 = std::chrono::steady_clock::now();
  const std::string reply = readUntil(fd, "\x01never");  // until the server closes
  ::close(fd);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK(reply.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(reply.find("\r\n0\r\n\r\n") == std::string::npos);  // no terminating chunk
  CHECK(reply.find(std::string(1000, 'a')) != std::string::npos);  // pieces before it came
  // The server goes on answering.
  f.fail_after = -1;
  CHECK(testing::httpRequest("127.0.0.1", f.admin->port(), "GET", "/vitals/requests", "", {})
            .status == 200);
}

TEST_CASE("a client that leaves mid-answer stops the producer") {
  Fixture f;
  f.pieces = 1 << 20;  // 100 GiB at 100 KiB a piece: only a departed client ends it early
  const int fd = testing::connectLoopback(f.admin->port());
  REQUIRE(fd >= 0);
  sendAll(fd, "GET /vitals/requests HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string start = readUntil(fd, std::string(50000, 'c'));
  CHECK(start.rfind("HTTP/1.1 200", 0) == 0);
  ::close(fd);
  // Production follows the writes (at most one piece ahead of the socket), so it stops soon
  // after the writes fail.
  int before = -1;
  REQUIRE(testing::waitFor(
      [&] {
        const int now = f.produced.load();
        const bool settled = now == before;
        before = now;
        return settled;
      },
      10s));
  std::this_thread::sleep_for(300ms);
  CHECK(f.produced.load() == before);
  CHECK(f.produced.load() < 5000);  // < 500 MB of a 100 GiB answer
  std::printf("admin_stream: %d pieces produced before the departed client was noticed\n",
              f.produced.load());
  f.pieces = 3;
  CHECK(testing::httpRequest("127.0.0.1", f.admin->port(), "GET", "/vitals/requests", "", {})
            .status == 200);
}

}  // namespace
}  // namespace portico::cp
