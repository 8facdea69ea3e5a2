// Blocking socket helpers for proxy tests: a scripted HTTP/1.1 upstream and a raw client
// that sends exact bytes and parses what comes back with our own codec.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace portico::dp::testing {

struct WireResponse {
  int status = 0;  // 0: connection closed before a full response
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool chunked = false;
  std::string header(const std::string& name) const;  // case-insensitive; "" if absent
};

// A connected client socket.
class RawClient {
 public:
  explicit RawClient(int port);
  ~RawClient();
  void send(const std::string& bytes);
  // Reads one response (to a request with `method`). status 0 on EOF/error.
  WireResponse read(const std::string& method = "GET");
  // True if the server closed the connection (reads EOF within a short wait).
  bool closedByPeer();
  // Raw bytes: waits until `n` bytes arrived (or EOF/3 s), returns what arrived.
  std::string readBytes(size_t n);
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string buf_;
};

// Upstream behaviour by path prefix: "/chunked" (chunked reply), "/close" (body until close),
// "/slow" (sleeps 1.5 s first), "/big" (1 MiB Content-Length body), "/early" (answers before
// reading the request body, then drains it), "/ws" (101 Upgrade, then echoes bytes until EOF),
// "/response-headers?name=value&..." (the echo, plus each query argument as a header),
// "/reply[/chunked|/close]?name=value&..." (the request body back as the response body,
// with those headers and X-Serial: <n>; Content-Length, chunked or until-close framing);
// anything else echoes:
// the body is "<METHOD> <TARGET>\n<name>: <value>\n...\n\n<request body>".
class ScriptedUpstream {
 public:
  ScriptedUpstream();
  ~ScriptedUpstream();
  int port() const { return port_; }
  int connections() const { return connections_.load(); }
  int replies() const { return serial_.load(); }  // /reply answers so far

 private:
  void serve(int fd);
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<int> connections_{0};
  std::atomic<int> serial_{0};
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<std::thread> threads_;
  std::vector<int> fds_;
};

// A TCP port with nothing listening on it.
int closedPort();

}  // namespace portico::dp::testing
