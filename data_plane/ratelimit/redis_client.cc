#include "data_plane/ratelimit/redis_client.h"

#include <hiredis/hiredis.h>

#include <utility>  // Boost 1.74 asio needs std::exchange

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "data_plane/plugins/io_thread.h"

namespace portico::dp::ratelimit {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

constexpr uint32_t kBackoffMinMs = 50;
constexpr uint32_t kBackoffMaxMs = 1000;

// The one event loop every Redis connection of the process runs on.
asio::io_context& redisIo() {
  static asio::io_context& io = plugins::startIoThread("redis");
  return io;
}

uint64_t nowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

RedisReply convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.type = r->type == REDIS_REPLY_STRING   ? RedisReply::Type::kString
                 : r->type == REDIS_REPLY_STATUS ? RedisReply::Type::kStatus
                                                 : RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

}  // namespace

RedisStats& redisStats() {
  static RedisStats* const kStats = new RedisStats();
  return *kStats;
}

void appendRedisCommand(std::initializer_list<std::string_view> argv, std::string* out) {
  absl::StrAppend(out, "*", argv.size(), "\r\n");
  for (std::string_view a : argv) {
    absl::StrAppend(out, "$", a.size(), "\r\n");
    out->append(a);
    out->append("\r\n");
  }
}

std::string RedisOptions::poolKey() const {
  return absl::StrCat(host, ":", port, ";", database, ";", timeout_ms, ";", ssl, ssl_verify, ";",
                      server_name, ";", username.size(), ":", username, ";", password);
}

// The connection state machine. Everything below runs on the Redis I/O thread, except
// execute(), which only posts to it.
class RedisClientImpl : public std::enable_shared_from_this<RedisClientImpl> {
 public:
  explicit RedisClientImpl(RedisOptions options)
      : options_(std::move(options)),
        io_(redisIo()),
        resolver_(io_),
        connect_timer_(io_),
        deadline_timer_(io_),
        retry_timer_(io_),
        reader_(redisReaderCreate()) {
    if (options_.timeout_ms == 0) {
      options_.timeout_ms = 60000;  // lua-resty-redis: 0 leaves nginx's 60 s socket default
    }
    if (options_.ssl) {
      // The system's trust store (OpenSSL's default paths; SSL_CERT_FILE / SSL_CERT_DIR name
      // others), as Kong's lua_ssl_trusted_certificate = system.
      ssl_ctx_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
      error_code ignored;
      ssl_ctx_->set_default_verify_paths(ignored);
    }
  }
  ~RedisClientImpl() { redisReaderFree(reader_); }

  const RedisOptions& options() const { return options_; }

  void start() {
    asio::post(io_, [self = shared_from_this()] { self->startConnect(); });
  }
  // The last holder went (its config was replaced): batches already sent still get their
  // answers (response-ratelimiting's increments after the response), then the connection
  // closes; nothing reconnects.
  void stop() {
    asio::post(io_, [self = shared_from_this()] {
      self->stopping_ = true;
      self->retry_timer_.cancel();
      const bool busy = (self->state_ == State::kConnected && !self->inflight_.empty()) ||
                        (self->state_ == State::kConnecting && !self->waiting_.empty());
      if (!busy) {
        self->closeForGood();
      }
    });
  }

  void execute(std::string encoded, size_t count, RedisCallback done) {
    redisStats().batches_total.fetch_add(1, std::memory_order_relaxed);
    Batch b;
    b.encoded = std::move(encoded);
    b.count = count;
    b.deadline_ms = nowMs() + options_.timeout_ms;
    b.done = std::move(done);
    asio::post(io_, [self = shared_from_this(), b = std::move(b)]() mutable {
      self->submit(std::move(b));
    });
  }

 private:
  enum class State : uint8_t { kIdle, kConnecting, kConnected, kDown, kStopped };
  // One connection: its socket, TLS layer and buffers. Every pending operation's handler holds
  // it, so nothing is freed under an operation still in flight when the connection is dropped.
  struct Conn {
    explicit Conn(asio::io_context& io) : socket(io) {}
    tcp::socket socket;
    std::optional<asio::ssl::stream<tcp::socket&>> tls;
    std::string write_buf;   // being written
    std::string write_next;  // queued behind it
    bool writing = false;
    char read_buf[16 * 1024];
  };
  struct Batch {
    std::string encoded;
    size_t count = 0;
    RedisReplies replies;
    uint64_t deadline_ms = 0;
    RedisCallback done;
    bool internal = false;  // AUTH/SELECT of a new connection
  };

  void finish(Batch& b, absl::StatusOr<RedisReplies> result) {
    if (!result.ok() && !b.internal) {
      redisStats().errors_total.fetch_add(1, std::memory_order_relaxed);
    }
    RedisCallback done = std::move(b.done);
    if (done) done(std::move(result));
  }

  void closeForGood() {
    state_ = State::kStopped;
    ++gen_;
    closeSocket();
    retry_timer_.cancel();
    failAll(absl::UnavailableError("redis client closed"));
  }

  void failAll(const absl::Status& st) {
    std::deque<Batch> inflight = std::move(inflight_);
    std::deque<Batch> waiting = std::move(waiting_);
    inflight_.clear();
    waiting_.clear();
    for (Batch& b : inflight) finish(b, st);
    for (Batch& b : waiting) finish(b, st);
  }

  void submit(Batch b) {
    switch (state_) {
      case State::kConnected:
        send(std::move(b));
        return;
      case State::kConnecting:
        waiting_.push_back(std::move(b));
        return;
      case State::kIdle:
        waiting_.push_back(std::move(b));
        startConnect();
        return;
      case State::kDown:
        finish(b, absl::UnavailableError(absl::StrCat("redis unavailable: ", last_error_)));
        return;
      case State::kStopped:
        finish(b, absl::UnavailableError("redis client closed"));
        return;
    }
  }

  void startConnect() {
    if (state_ == State::kStopped || state_ == State::kConnecting ||
        state_ == State::kConnected) {
      return;
    }
    state_ = State::kConnecting;
    const uint64_t gen = ++gen_;
    redisReaderFree(reader_);
    reader_ = redisReaderCreate();
    connect_timer_.expires_after(std::chrono::milliseconds(options_.timeout_ms));
    connect_timer_.async_wait([self = shared_from_this(), gen](const error_code& ec) {
      if (ec || gen != self->gen_ || self->state_ != State::kConnecting) return;
      self->connectFailed(gen, "timeout");
    });
    resolver_.async_resolve(
        options_.host, std::to_string(options_.port),
        [self = shared_from_this(), gen](const error_code& ec, tcp::resolver::results_type r) {
          if (gen != self->gen_ || self->state_ != State::kConnecting) return;
          if (ec) {
            self->connectFailed(gen, ec.message());
            return;
          }
          auto conn = std::make_shared<Conn>(self->io_);
          self->conn_ = conn;
          asio::async_connect(conn->socket, r,
                              [self, gen, conn](const error_code& ec2, const tcp::endpoint&) {
                                if (gen != self->gen_ || self->state_ != State::kConnecting) {
                                  return;
                                }
                                if (ec2) {
                                  self->connectFailed(gen, ec2.message());
                                  return;
                                }
                                self->tcpConnected(gen, conn);
                              });
        });
  }

  void connectFailed(uint64_t gen, const std::string& why) {
    redisStats().connect_failures_total.fetch_add(1, std::memory_order_relaxed);
    // Log the first failure of a series, not every retry while Redis stays down.
    if (backoff_ms_ == 0 || last_connect_error_ != why) {
      LOG_WARN("redis", "connect to %s:%d failed: %s", options_.host, options_.port, why);
    }
    last_connect_error_ = why;
    down(gen, absl::StrCat("connect to ", options_.host, ":", options_.port, " failed: ", why),
         /*was_connected=*/false);
  }

  void tcpConnected(uint64_t gen, const std::shared_ptr<Conn>& conn) {
    error_code ignored;
    conn->socket.set_option(tcp::no_delay(true), ignored);
    if (!ssl_ctx_) {
      connected(gen);
      return;
    }
    // TLS (Kong's redis.ssl): SNI is server_name, else the host; with ssl_verify the
    // certificate must chain to a trusted CA and name that host. The connect deadline covers
    // the handshake.
    const std::string& name = options_.server_name.empty() ? options_.host : options_.server_name;
    conn->tls.emplace(conn->socket, *ssl_ctx_);
    error_code ip_ec;
    asio::ip::make_address(name, ip_ec);
    if (ip_ec) {
      SSL_set_tlsext_host_name(conn->tls->native_handle(), name.c_str());
    }
    if (options_.ssl_verify) {
      conn->tls->set_verify_mode(asio::ssl::verify_peer);
      conn->tls->set_verify_callback(asio::ssl::host_name_verification(name));
    } else {
      conn->tls->set_verify_mode(asio::ssl::verify_none);
    }
    conn->tls->async_handshake(
        asio::ssl::stream_base::client,
        [self = shared_from_this(), gen, conn](const error_code& ec) {
          if (gen != self->gen_ || self->state_ != State::kConnecting) return;
          if (ec) {
            self->connectFailed(gen, absl::StrCat("TLS handshake: ", ec.message()));
            return;
          }
          self->connected(gen);
        });
  }

  void connected(uint64_t gen) {
    connect_timer_.cancel();
    redisStats().connects_total.fetch_add(1, std::memory_order_relaxed);
    state_ = State::kConnected;
    backoff_ms_ = 0;
    // AUTH / SELECT go first on a new connection (Kong: on a connection not reused).
    Batch hello;
    hello.internal = true;
    hello.deadline_ms = nowMs() + options_.timeout_ms;
    if (!options_.password.empty()) {
      if (!options_.username.empty()) {
        appendRedisCommand({"AUTH", options_.username, options_.password}, &hello.encoded);
      } else {
        appendRedisCommand({"AUTH", options_.password}, &hello.encoded);
      }
      ++hello.count;
    }
    if (options_.database != 0) {
      appendRedisCommand({"SELECT", std::to_string(options_.database)}, &hello.encoded);
      ++hello.count;
    }
    if (hello.count > 0) {
      hello.done = [self = shared_from_this(), gen](absl::StatusOr<RedisReplies> r) {
        if (!r.ok() || gen != self->gen_) return;
        for (const RedisReply& reply : *r) {
          if (reply.type == RedisReply::Type::kError) {
            LOG_WARN("redis", "%s:%d: %s", self->options_.host, self->options_.port, reply.str);
            self->down(gen, reply.str, /*was_connected=*/false);
            return;
          }
        }
      };
      send(std::move(hello));
    }
    read(gen, conn_);
    std::deque<Batch> waiting = std::move(waiting_);
    waiting_.clear();
    const uint64_t now = nowMs();
    for (Batch& b : waiting) {
      b.deadline_ms = now + options_.timeout_ms;  // the connect had its own deadline
      send(std::move(b));
    }
    if (stopping_ && inflight_.empty()) {
      closeForGood();
    }
  }

  // The connection is unusable: fail what is pending, close, reconnect later.
  void down(uint64_t gen, std::string why, bool was_connected) {
    if (gen != gen_ || state_ == State::kStopped) return;
    ++gen_;
    last_error_ = std::move(why);
    closeSocket();
    state_ = State::kDown;
    failAll(absl::UnavailableError(absl::StrCat("redis: ", last_error_)));
    if (stopping_) {
      state_ = State::kStopped;
      return;
    }
    // A healthy connection that broke (Redis restarted) is retried at once; a failed connect
    // backs off.
    backoff_ms_ = was_connected ? 0
                                : std::min(kBackoffMaxMs, std::max(kBackoffMinMs, backoff_ms_ * 2));
    const uint64_t retry_gen = gen_;
    retry_timer_.expires_after(std::chrono::milliseconds(backoff_ms_));
    retry_timer_.async_wait([self = shared_from_this(), retry_gen](const error_code& ec) {
      if (ec || retry_gen != self->gen_ || self->state_ != State::kDown) return;
      self->state_ = State::kIdle;
      self->startConnect();
    });
  }

  void closeSocket() {
    error_code ignored;
    resolver_.cancel();
    if (conn_ != nullptr) {
      conn_->socket.close(ignored);  // pending operations end; their handlers hold conn_
      conn_.reset();
    }
    connect_timer_.cancel();
    deadline_timer_.cancel();
  }

  void send(Batch b) {
    if (b.count == 0) {
      finish(b, RedisReplies{});
      return;
    }
    Conn& c = *conn_;
    (c.writing ? c.write_next : c.write_buf).append(b.encoded);
    b.encoded.clear();
    b.replies.reserve(b.count);
    inflight_.push_back(std::move(b));
    if (inflight_.size() == 1) armDeadline();
    if (!c.writing) write(conn_);
  }

  void write(const std::shared_ptr<Conn>& conn) {
    conn->writing = true;
    const uint64_t gen = gen_;
    auto done = [self = shared_from_this(), gen, conn](const error_code& ec, size_t) {
      if (gen != self->gen_) return;
      if (ec) {
        self->down(gen, absl::StrCat("write: ", ec.message()), true);
        return;
      }
      conn->write_buf.clear();
      if (conn->write_next.empty()) {
        conn->writing = false;
        return;
      }
      std::swap(conn->write_buf, conn->write_next);
      self->write(conn);
    };
    if (conn->tls) {
      asio::async_write(*conn->tls, asio::buffer(conn->write_buf), std::move(done));
    } else {
      asio::async_write(conn->socket, asio::buffer(conn->write_buf), std::move(done));
    }
  }

  void armDeadline() {
    if (inflight_.empty()) {
      deadline_timer_.cancel();
      return;
    }
    const uint64_t gen = gen_;
    const uint64_t at = inflight_.front().deadline_ms;
    const uint64_t now = nowMs();
    deadline_timer_.expires_after(std::chrono::milliseconds(at > now ? at - now : 0));
    deadline_timer_.async_wait([self = shared_from_this(), gen, at](const error_code& ec) {
      if (ec || gen != self->gen_ || self->inflight_.empty()) return;
      if (self->inflight_.front().deadline_ms > at) return;  // answered; a later one is armed
      LOG_WARN("redis", "%s:%d: no answer within %u ms; reconnecting", self->options_.host,
               self->options_.port, self->options_.timeout_ms);
      // Pending batches fail with a deadline, not a generic loss.
      std::deque<Batch> inflight = std::move(self->inflight_);
      self->inflight_.clear();
      for (Batch& b : inflight) {
        self->finish(b, absl::DeadlineExceededError(
                            absl::StrCat("redis: no answer within ", self->options_.timeout_ms,
                                         " ms")));
      }
      self->down(gen, "timeout", /*was_connected=*/true);
    });
  }

  void read(uint64_t gen, const std::shared_ptr<Conn>& conn) {
    auto done = [self = shared_from_this(), gen, conn](const error_code& ec, size_t n) {
      if (gen != self->gen_) return;
      if (ec) {
        const bool closed = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
        self->down(gen, closed ? std::string("connection closed by Redis")
                               : absl::StrCat("read: ", ec.message()),
                   true);
        return;
      }
      if (!self->consume(gen, conn->read_buf, n)) return;
      self->read(gen, conn);
    };
    const auto buf = asio::buffer(conn->read_buf, sizeof(conn->read_buf));
    if (conn->tls) {
      conn->tls->async_read_some(buf, std::move(done));
    } else {
      conn->socket.async_read_some(buf, std::move(done));
    }
  }

  // Feeds what arrived to the parser and hands complete replies to their batches.
  bool consume(uint64_t gen, const char* data, size_t n) {
    if (redisReaderFeed(reader_, data, n) != REDIS_OK) {
      down(gen, absl::StrCat("protocol error: ", reader_->errstr), true);
      return false;
    }
    for (;;) {
      void* raw = nullptr;
      if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
        down(gen, absl::StrCat("protocol error: ", reader_->errstr), true);
        return false;
      }
      if (raw == nullptr) return true;
      auto* reply = static_cast<redisReply*>(raw);
      if (inflight_.empty()) {
        freeReplyObject(reply);
        down(gen, "unexpected reply", true);
        return false;
      }
      Batch& b = inflight_.front();
      b.replies.push_back(convert(reply));
      freeReplyObject(reply);
      if (b.replies.size() == b.count) {
        Batch done = std::move(b);
        inflight_.pop_front();
        armDeadline();
        finish(done, std::move(done.replies));
        if (gen != gen_) return false;  // the callback closed the connection (AUTH failed)
        if (stopping_ && inflight_.empty() && waiting_.empty()) {
          closeForGood();
          return false;
        }
      }
    }
  }

  RedisOptions options_;
  asio::io_context& io_;
  std::unique_ptr<asio::ssl::context> ssl_ctx_;  // redis.ssl
  std::shared_ptr<Conn> conn_;                    // the current connection
  tcp::resolver resolver_;
  asio::steady_timer connect_timer_;
  asio::steady_timer deadline_timer_;
  asio::steady_timer retry_timer_;
  redisReader* reader_;
  State state_ = State::kIdle;
  uint64_t gen_ = 0;  // bumped whenever the connection changes: stale handlers do nothing
  uint32_t backoff_ms_ = 0;
  std::string last_error_;
  std::string last_connect_error_;
  std::deque<Batch> waiting_;   // before the connection is up
  std::deque<Batch> inflight_;  // written (or being written), in reply order
  bool stopping_ = false;  // no holder left: close once what was sent is answered
};

namespace {
std::mutex g_pool_mu;
std::map<std::string, std::weak_ptr<RedisClient>>& pool() {
  static auto* const kPool = new std::map<std::string, std::weak_ptr<RedisClient>>();
  return *kPool;
}
}  // namespace

std::shared_ptr<RedisClient> RedisClient::get(const RedisOptions& options) {
  const std::string key = options.poolKey();
  std::lock_guard<std::mutex> lock(g_pool_mu);
  auto& entry = pool()[key];
  if (std::shared_ptr<RedisClient> existing = entry.lock()) {
    return existing;
  }
  auto impl = std::make_shared<RedisClientImpl>(options);
  impl->start();  // connect now, so the first request does not pay for it
  std::shared_ptr<RedisClient> client(new RedisClient(std::move(impl)));
  entry = client;
  // Forget entries whose clients are gone (configs that no longer exist).
  for (auto it = pool().begin(); it != pool().end();) {
    it = it->second.expired() ? pool().erase(it) : std::next(it);
  }
  return client;
}

RedisClient::~RedisClient() { impl_->stop(); }

void RedisClient::execute(std::string encoded, size_t count, RedisCallback done) {
  impl_->execute(std::move(encoded), count, std::move(done));
}

const RedisOptions& RedisClient::options() const { return impl_->options(); }

}  // namespace portico::dp::ratelimit
