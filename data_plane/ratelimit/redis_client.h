// A Redis client for the rate-limit plugins' `redis` policy that never blocks a proxy worker.
// Every connection lives on one dedicated I/O thread (an Asio event loop of its own); a caller
// hands it a pipelined batch of commands and gets the replies in a callback on that thread,
// which for a request means: park the request (PhaseResult::kWait), resume it from the
// callback. hiredis provides the RESP reply parser; Asio the sockets and timers.
//
// Guarantees: each batch's callback runs exactly once, within the configured timeout (connect
// and answer each; no answer in time fails every batch on that connection and closes it,
// since later replies would be out of step). A lost connection reconnects by itself in the
// background (immediately, then with backoff from 50 ms to 1 s while Redis stays down); while
// it is down, batches fail at once instead of waiting for a doomed connect.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace portico::dp::ratelimit {

// Kong's `redis` record (kong/tools/redis/schema.lua).
struct RedisOptions {
  std::string host;
  uint16_t port = 6379;
  std::string username;  // "": no ACL user (AUTH <password> only)
  std::string password;  // "": no AUTH
  int64_t database = 0;
  uint32_t timeout_ms = 2000;  // connect (and TLS handshake), and each batch's answer
  bool ssl = false;            // TLS
  bool ssl_verify = false;     // check the certificate against the system's trusted CAs
  std::string server_name;     // SNI and the name to verify ("" = host)
  // Configs with equal options share one client and its connection.
  std::string poolKey() const;
};

struct RedisReply {
  enum class Type : uint8_t { kNil, kInteger, kString, kStatus, kError, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;  // kString, kStatus, kError
};
using RedisReplies = std::vector<RedisReply>;
using RedisCallback = std::function<void(absl::StatusOr<RedisReplies>)>;

// Appends one command in RESP (an array of bulk strings).
void appendRedisCommand(std::initializer_list<std::string_view> argv, std::string* out);

// Process-wide counters (the DP's /metrics shows them).
struct RedisStats {
  std::atomic<uint64_t> batches_total{0};
  std::atomic<uint64_t> errors_total{0};          // batches that failed (down, timeout, lost)
  std::atomic<uint64_t> connects_total{0};        // connections established
  std::atomic<uint64_t> connect_failures_total{0};
};
RedisStats& redisStats();

class RedisClientImpl;

// A shared client. Holders keep the connection alive; the last one to go closes it.
class RedisClient {
 public:
  // The client for `options`, shared with every other holder of equal options.
  static std::shared_ptr<RedisClient> get(const RedisOptions& options);
  ~RedisClient();

  // Sends `count` commands (RESP, back to back in `encoded`) as one pipelined batch. `done` runs
  // exactly once, on the Redis I/O thread: with `count` replies in order (any of them may be a
  // Redis error reply), kUnavailable (no connection), or kDeadlineExceeded (no answer within
  // the timeout). Thread-safe; never blocks.
  void execute(std::string encoded, size_t count, RedisCallback done);
  const RedisOptions& options() const;

 private:
  explicit RedisClient(std::shared_ptr<RedisClientImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<RedisClientImpl> impl_;
};

}  // namespace portico::dp::ratelimit
