// Redis for the rate-limit plugin tests: the shared test server tests/run.sh starts
// (PORTICO_TEST_REDIS_ADDR=127.0.0.1:<port>), a private redis-server a test can stop and start,
// a server that accepts connections and never answers, and a blocking command helper.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "data_plane/ratelimit/redis_client.h"
#include "tests/support/test_support.h"

namespace portico::dp::testing {

struct RedisAddr {
  std::string host;
  int port = 0;
};

// The shared test Redis, or false (the caller WARNs and skips).
inline bool testRedis(RedisAddr* out) {
  const char* addr = std::getenv("PORTICO_TEST_REDIS_ADDR");
  if (addr == nullptr || *addr == '\0') return false;
  const std::string a(addr);
  const size_t colon = a.rfind(':');
  if (colon == std::string::npos) return false;
  out->host = a.substr(0, colon);
  out->port = std::atoi(a.c_str() + colon + 1);
  return out->port > 0;
}

// One batch through the production client, waited for.
inline absl::StatusOr<ratelimit::RedisReplies> redisRun(
    const RedisAddr& addr, std::initializer_list<std::string_view> argv,
    const std::string& password = "", int64_t database = 0) {
  ratelimit::RedisOptions o;
  o.host = addr.host;
  o.port = static_cast<uint16_t>(addr.port);
  o.timeout_ms = 2000;
  o.password = password;
  o.database = database;
  auto client = ratelimit::RedisClient::get(o);
  std::string batch;
  ratelimit::appendRedisCommand(argv, &batch);
  auto promise = std::make_shared<std::promise<absl::StatusOr<ratelimit::RedisReplies>>>();
  auto future = promise->get_future();
  client->execute(std::move(batch), 1,
                  [promise](absl::StatusOr<ratelimit::RedisReplies> r) { promise->set_value(r); });
  return future.get();
}

// A redis-server of the test's own on a free port (no persistence), for stop/start tests.
class PrivateRedis {
 public:
  // `extra`: more redis-server arguments ("--requirepass", "s3cret").
  explicit PrivateRedis(std::vector<std::string> extra = {})
      : port_(portico::testing::freePort()), extra_(std::move(extra)) {}
  static bool available() { return ::access("/usr/bin/redis-server", X_OK) == 0; }
  // Replaces the extra arguments before start() (they may name port()).
  void setArgs(std::vector<std::string> extra) { extra_ = std::move(extra); }
  bool start() {
    std::vector<std::string> args = {"--port", std::to_string(port_), "--bind", "127.0.0.1",
                                     "--save", "", "--appendonly", "no", "--dir", "/tmp"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    process_ = std::make_unique<portico::testing::Process>("/usr/bin/redis-server", args);
    return portico::testing::waitFor(
        [this] {
          const int fd = portico::testing::connectLoopback(port_, 1);
          if (fd < 0) return false;
          ::close(fd);
          return true;
        },
        std::chrono::seconds(10));
  }
  void stop() {
    if (process_) process_->stop();
    process_.reset();
  }
  ~PrivateRedis() { stop(); }
  int port() const { return port_; }
  RedisAddr addr() const { return {"127.0.0.1", port_}; }

 private:
  int port_;
  std::vector<std::string> extra_;
  std::unique_ptr<portico::testing::Process> process_;
};

// Accepts connections and reads, never answers: a hung Redis.
class SilentServer {
 public:
  SilentServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(fd_, 64);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        accepted_.push_back(c);  // kept open, never read
      }
    });
  }
  ~SilentServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    for (int c : accepted_) ::close(c);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<int> accepted_;
};

}  // namespace portico::dp::testing
