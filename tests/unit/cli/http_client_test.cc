// porticoctl's HTTP client (cli/http_client.h) against a scripted loopback server: URL
// parsing (https refused), Content-Length and chunked bodies, keep-alive reuse and a
// reconnect after the server closed an idle connection, the response size limit, the read
// timeout, and a refused connection.
#include "cli/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace portico::cli {
namespace {

// Accepts connections on 127.0.0.1 and hands each to `serve` (on one thread, in order).
class ScriptedServer {
 public:
  // serve(fd, connection_index) reads requests and writes answers; returns when done with
  // the connection (which is then closed).
  explicit ScriptedServer(std::function<void(int, int)> serve) : serve_(std::move(serve)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    REQUIRE(::listen(fd_, 8) == 0);
    thread_ = std::thread([this] {
      for (int i = 0;; ++i) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0 || stop_) {
          if (c >= 0) {
            ::close(c);
          }
          return;
        }
        ++accepted_;
        serve_(c, i);
        ::close(c);
      }
    });
  }
  ~ScriptedServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  int port() const { return port_; }
  int accepted() const { return accepted_; }

 private:
  std::function<void(int, int)> serve_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// Reads one request head (and no body: the tests send GETs).
std::string readHead(int fd) {
  std::string in;
  char c;
  while (in.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1) {
    in.push_back(c);
  }
  return in;
}

void sendAll(int fd, const std::string& s) { ::send(fd, s.data(), s.size(), MSG_NOSIGNAL); }

HttpClient client(int port, HttpOptions options = {}) {
  absl::StatusOr<HttpEndpoint> ep = parseHttpUrl("http://127.0.0.1:" + std::to_string(port));
  REQUIRE(ep.ok());
  return HttpClient(*ep, options);
}

TEST_CASE("parseHttpUrl: host, port, base path; https and other schemes refused") {
  absl::StatusOr<HttpEndpoint> ep = parseHttpUrl("http://admin.internal:8444/kong/");
  REQUIRE(ep.ok());
  CHECK(ep->host == "admin.internal");
  CHECK(ep->port == 8444);
  CHECK(ep->base_path == "/kong");
  ep = parseHttpUrl("localhost");
  REQUIRE(ep.ok());
  CHECK(ep->port == 80);
  ep = parseHttpUrl("http://[::1]:9001");
  REQUIRE(ep.ok());
  CHECK(ep->host == "::1");
  CHECK(ep->port == 9001);
  absl::StatusOr<HttpEndpoint> https = parseHttpUrl("https://127.0.0.1:8444");
  REQUIRE(!https.ok());
  CHECK(https.status().message().find("https is not supported") != absl::string_view::npos);
  CHECK(!parseHttpUrl("ftp://x").ok());
  CHECK(!parseHttpUrl("http://x:99999").ok());
  CHECK(!parseHttpUrl("http://user:pw@x").ok());
}

TEST_CASE("HttpClient: Content-Length and chunked answers on one kept-alive connection") {
  ScriptedServer server([](int fd, int) {
    CHECK(readHead(fd).rfind("GET /one HTTP/1.1\r\n", 0) == 0);
    sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    const std::string second = readHead(fd);
    CHECK(second.find("X-Team: a\r\n") != std::string::npos);
    sendAll(fd, "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                "4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\n");
    readHead(fd);
    sendAll(fd, "HTTP/1.1 204 No Content\r\n\r\n");
    readHead(fd);
  });
  HttpOptions o;
  o.headers = {{"X-Team", "a"}};
  HttpClient c = client(server.port(), o);
  absl::StatusOr<HttpResponse> r = c.request("GET", "/one");
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  CHECK(r->body == "hello");
  r = c.request("GET", "/two");
  REQUIRE(r.ok());
  CHECK(r->status == 201);
  CHECK(r->body == "wikipedia");
  r = c.request("DELETE", "/three");
  REQUIRE(r.ok());
  CHECK(r->status == 204);
  CHECK(r->body.empty());
  CHECK(server.accepted() == 1);
}

TEST_CASE("HttpClient: reconnects once when the server closed the idle connection") {
  ScriptedServer server([](int fd, int) {
    readHead(fd);
    sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    // then close: the next request on this connection finds it gone
  });
  HttpClient c = client(server.port());
  REQUIRE(c.request("GET", "/a").ok());
  absl::StatusOr<HttpResponse> r = c.request("GET", "/b");
  REQUIRE(r.ok());
  CHECK(r->body == "ok");
  CHECK(server.accepted() == 2);
}

TEST_CASE("HttpClient: Connection: close and read-until-close bodies") {
  ScriptedServer server([](int fd, int) {
    readHead(fd);
    sendAll(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it");
  });
  HttpClient c = client(server.port());
  absl::StatusOr<HttpResponse> r = c.request("GET", "/");
  REQUIRE(r.ok());
  CHECK(r->body == "all of it");
}

TEST_CASE("HttpClient: size limit, malformed answers, timeouts, refused connections") {
  ScriptedServer server([](int fd, int i) {
    readHead(fd);
    if (i == 0) {
      sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
    } else if (i == 1) {
      sendAll(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    } else if (i == 2) {
      std::this_thread::sleep_for(std::chrono::milliseconds(400));  // slower than the timeout
    } else {
      sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf");  // then close
    }
  });
  HttpOptions o;
  o.max_response_bytes = 1000;
  o.io_timeout_ms = 150;
  {
    HttpClient c = client(server.port(), o);
    absl::StatusOr<HttpResponse> r = c.request("GET", "/big");
    CHECK(absl::IsResourceExhausted(r.status()));
  }
  {
    HttpClient c = client(server.port(), o);
    CHECK(absl::IsInternal(c.request("GET", "/bad").status()));
  }
  {
    HttpClient c = client(server.port(), o);
    CHECK(absl::IsDeadlineExceeded(c.request("GET", "/slow").status()));
  }
  {
    o.io_timeout_ms = 5000;  // the server is still sleeping off the previous case
    HttpClient c = client(server.port(), o);
    absl::StatusOr<HttpResponse> r = c.request("GET", "/cut");
    CHECK(absl::IsInternal(r.status()));
    CHECK(r.status().message().find("closed in the middle of a response") !=
          absl::string_view::npos);
  }
  // A port nobody listens on.
  int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(probe);
  HttpClient refused = client(ntohs(a.sin_port));
  absl::StatusOr<HttpResponse> r = refused.request("GET", "/");
  REQUIRE(absl::IsUnavailable(r.status()));
  CHECK(r.status().message().find("cannot connect to 127.0.0.1:") != absl::string_view::npos);
}

}  // namespace
}  // namespace portico::cli
