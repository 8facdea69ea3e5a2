#include "data_plane/plugins/logging/sender.h"

#include <sys/socket.h>

#include <utility>  // Boost 1.74 asio needs std::exchange

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/http/chunked.h"
#include "common/http/http_parser.h"
#include "common/logging.h"
#include "data_plane/plugins/io_thread.h"

namespace portico::dp::plugins::logging {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;
using error_code = boost::system::error_code;
template <typename T>
using Task = asio::awaitable<T>;

namespace {

constexpr uint64_t kForever = ~uint64_t{0};
// Kong's queue: with less than this left of the coalescing delay, the batch goes as it is.
constexpr uint64_t kCoalesceMinMs = 50;
// tcp-log/udp-log write what is queued together, up to this much per write.
constexpr size_t kStreamBatchBytes = 256 * 1024;

std::atomic<int64_t> g_queued{0};

uint64_t nowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// The one event loop every log connection of the process runs on.
asio::io_context& logIo() {
  static asio::io_context& io = plugins::startIoThread("log-sender");
  return io;
}

// Kong's loggers do not verify the log server's certificate (http-log: ssl_verify=false;
// tcp-log: sslhandshake(..., verify=false)).
asio::ssl::context& clientTls() {
  static asio::ssl::context* const kCtx = [] {
    auto* ctx = new asio::ssl::context(asio::ssl::context::tls_client);
    ctx->set_verify_mode(asio::ssl::verify_none);
    return ctx;
  }();
  return *kCtx;
}

auto awaitWith(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

// One connection (plain or TLS) to a log server.
struct Conn {
  explicit Conn(bool use_tls) {
    if (use_tls) {
      tls.emplace(logIo(), clientTls());
    } else {
      plain.emplace(logIo());
    }
  }
  tcp::socket& socket() { return tls ? tls->next_layer() : *plain; }
  void close() {
    error_code ec;
    socket().close(ec);
  }
  // True when the server closed (or, on a plain connection, wrote to) a kept connection: it
  // must not be reused (a write to it would be lost without an error). A TLS server may have
  // sent session tickets we never read: only its end counts there.
  bool stale() {
    if (!socket().is_open()) {
      return true;
    }
    char c;
    const ssize_t n = ::recv(socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
      return !tls;
    }
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
  }
  std::optional<tcp::socket> plain;
  std::optional<asio::ssl::stream<tcp::socket>> tls;
  uint64_t idle_since_ms = 0;
};
using ConnPtr = std::shared_ptr<Conn>;

// Closes the connection when `ms` pass before it is destroyed (each network step's timeout).
class Watchdog {
 public:
  Watchdog(ConnPtr conn, uint32_t ms) : timer_(logIo()) {
    timer_.expires_after(std::chrono::milliseconds(ms));
    timer_.async_wait([conn = std::move(conn), fired = fired_](error_code ec) {
      if (!ec) {
        *fired = true;
        conn->close();
      }
    });
  }
  ~Watchdog() { timer_.cancel(); }
  bool fired() const { return *fired_; }

 private:
  asio::steady_timer timer_;
  std::shared_ptr<bool> fired_ = std::make_shared<bool>(false);
};

Task<bool> connectTo(const ConnPtr& c, const std::string& host, uint16_t port,
                     uint32_t timeout_ms, const std::string& sni, std::string* err) {
  error_code ec;
  tcp::resolver resolver(logIo());
  const auto endpoints =
      co_await resolver.async_resolve(host, std::to_string(port), awaitWith(ec));
  if (ec) {
    *err = "could not resolve " + host + ": " + ec.message();
    co_return false;
  }
  Watchdog dog(c, timeout_ms);
  co_await asio::async_connect(c->socket(), endpoints, awaitWith(ec));
  if (ec) {
    *err = dog.fired() ? "timeout" : ec.message();
    co_return false;
  }
  c->socket().set_option(tcp::no_delay(true), ec);
  if (c->tls) {
    error_code addr_ec;
    asio::ip::make_address(sni, addr_ec);
    if (!sni.empty() && addr_ec) {  // no SNI for an IP address (RFC 6066)
      SSL_set_tlsext_host_name(c->tls->native_handle(), sni.c_str());
    }
    co_await c->tls->async_handshake(asio::ssl::stream_base::client, awaitWith(ec));
    if (ec) {
      *err = "TLS handshake: " + (dog.fired() ? std::string("timeout") : ec.message());
      co_return false;
    }
  }
  co_return true;
}

Task<bool> writeAll(const ConnPtr& c, std::string_view data, uint32_t timeout_ms,
                    std::string* err) {
  error_code ec;
  Watchdog dog(c, timeout_ms);
  if (c->tls) {
    co_await asio::async_write(*c->tls, asio::buffer(data.data(), data.size()), awaitWith(ec));
  } else {
    co_await asio::async_write(*c->plain, asio::buffer(data.data(), data.size()),
                               awaitWith(ec));
  }
  if (ec) {
    *err = dog.fired() ? "timeout" : ec.message();
    co_return false;
  }
  co_return true;
}

// Reads more into `buf`; false on error, timeout or EOF (*eof set for a clean end).
Task<bool> readSome(const ConnPtr& c, std::string* buf, uint32_t timeout_ms, bool* eof,
                    std::string* err) {
  char tmp[8192];
  error_code ec;
  size_t n = 0;
  Watchdog dog(c, timeout_ms);
  if (c->tls) {
    n = co_await c->tls->async_read_some(asio::buffer(tmp), awaitWith(ec));
  } else {
    n = co_await c->plain->async_read_some(asio::buffer(tmp), awaitWith(ec));
  }
  buf->append(tmp, n);
  if (ec) {
    *eof = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
    *err = dog.fired() ? "timeout" : ec.message();
    co_return false;
  }
  co_return true;
}

}  // namespace

// ---- The queue every sender has; its consumer runs on the log I/O thread.
class SenderCore : public std::enable_shared_from_this<SenderCore> {
 public:
  SenderCore(size_t max_entries, size_t max_bytes, const Counters& counters)
      : wake_(logIo()), max_entries_(max_entries), max_bytes_(max_bytes), counters_(counters) {}
  virtual ~SenderCore() = default;

  std::string push(std::string entry) {
    std::string reuse;   // the last evicted entry, for the caller's next one
    size_t dropped = 0;  // queued entries evicted
    bool refused = false;
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (max_bytes_ != 0 && entry.size() > max_bytes_) {
        refused = true;  // Kong: "string to be queued is longer ... than the queue's max_bytes"
      } else {
        // Kong's queue when full: the oldest entries go to make room.
        while (!q_.empty() && (q_.size() >= max_entries_ ||
                               (max_bytes_ != 0 && bytes_ + entry.size() > max_bytes_))) {
          bytes_ -= q_.front().size();
          reuse = std::move(q_.front());
          q_.pop_front();
          ++dropped;
        }
        bytes_ += entry.size();
        q_.push_back(std::move(entry));
        g_queued.fetch_add(1, std::memory_order_relaxed);
      }
      // A sleeping consumer is woken once there is enough to do (a batch being gathered waits
      // for max_batch_size entries, not for each one: no wake-up per request).
      wake = waiting_ && q_.size() >= wake_at_;
      if (wake) waiting_ = false;
    }
    if (dropped > 0 || refused) {
      counters_.dropped->inc(dropped + (refused ? 1 : 0));
      g_queued.fetch_sub(static_cast<int64_t>(dropped), std::memory_order_relaxed);
    }
    if (wake) {
      asio::post(logIo(), [self = shared_from_this()] { self->wake_.cancel(); });
    }
    return reuse;
  }

  void close() {
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
      wake = waiting_;
      waiting_ = false;
    }
    if (wake) {
      asio::post(logIo(), [self = shared_from_this()] { self->wake_.cancel(); });
    }
  }

  void start() {
    asio::co_spawn(logIo(), run(shared_from_this()), asio::detached);
  }

 protected:
  virtual Task<void> run(std::shared_ptr<SenderCore> self) = 0;

  size_t queued(bool* closed = nullptr) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed != nullptr) *closed = closed_;
    return q_.size();
  }
  bool closed() {
    std::lock_guard<std::mutex> lock(mu_);
    return closed_;
  }
  // Up to `max_n` entries (and, with max_bytes_total, the entries fitting in it, at least one).
  std::vector<std::string> take(size_t max_n, size_t max_bytes_total = 0) {
    std::vector<std::string> out;
    std::lock_guard<std::mutex> lock(mu_);
    size_t bytes = 0;
    while (!q_.empty() && out.size() < max_n &&
           (max_bytes_total == 0 || out.empty() || bytes + q_.front().size() <= max_bytes_total)) {
      bytes += q_.front().size();
      bytes_ -= q_.front().size();
      out.push_back(std::move(q_.front()));
      q_.pop_front();
    }
    g_queued.fetch_sub(static_cast<int64_t>(out.size()), std::memory_order_relaxed);
    return out;
  }
  // Sleeps until an entry is pushed, close(), wake() or `deadline_ms` (steady ms; kForever).
  // Returns at once when the queue no longer holds `seen` entries (a push raced the caller),
  // or when closed unless `past_close` (waiting for deliveries after the close). Pushes wake it
  // once `wake_at` entries are queued.
  Task<void> sleep(uint64_t deadline_ms, size_t seen, bool past_close = false,
                   size_t wake_at = 1) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (q_.size() != seen || (closed_ && !past_close)) {
        co_return;
      }
      waiting_ = true;
      wake_at_ = std::max(wake_at, seen + 1);
    }
    if (deadline_ms == kForever) {
      wake_.expires_at(asio::steady_timer::time_point::max());
    } else {
      const uint64_t now = nowMs();
      wake_.expires_after(std::chrono::milliseconds(deadline_ms > now ? deadline_ms - now : 0));
    }
    error_code ec;
    co_await wake_.async_wait(awaitWith(ec));
    std::lock_guard<std::mutex> lock(mu_);
    waiting_ = false;
  }
  // I/O thread: ends a sleep() (a delivery finished).
  void wake() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      waiting_ = false;
    }
    wake_.cancel();
  }
  void warn(const std::string& what) {
    const uint64_t now = nowMs();
    if (now - last_warn_ms_ >= 1000) {  // at most once a second per sender
      last_warn_ms_ = now;
      LOG_WARN("log-sender", "%s", what.c_str());
    }
  }

  asio::steady_timer wake_;
  const size_t max_entries_;
  const size_t max_bytes_;
  const Counters counters_;

 private:
  std::mutex mu_;
  std::deque<std::string> q_;
  size_t bytes_ = 0;
  bool waiting_ = false;
  size_t wake_at_ = 1;  // queue size at which a push wakes the sleeping consumer
  bool closed_ = false;
  uint64_t last_warn_ms_ = 0;
};

namespace {

// ---- http-log
class HttpCore final : public SenderCore {
 public:
  HttpCore(const HttpTarget& target, const QueueOptions& queue, const Counters& counters)
      : SenderCore(queue.max_entries, queue.max_bytes, counters),
        target_(target),
        queue_(queue) {}

 protected:
  Task<void> run(std::shared_ptr<SenderCore> self) override {
    for (;;) {
      bool is_closed = false;
      const size_t n = queued(&is_closed);
      if (n == 0) {
        if (is_closed && in_flight_ == 0) {
          break;
        }
        co_await sleep(idleDeadline(), 0, /*past_close=*/is_closed);
        closeExpiredIdle();
        continue;
      }
      if (queue_.concurrency_limit == -1) {
        if (in_flight_ >= kUnlimitedDeliveries) {
          co_await sleep(kForever, n, /*past_close=*/true);  // a delivery's end wakes it
          continue;
        }
        std::vector<std::string> one = take(1);
        ++in_flight_;
        asio::co_spawn(
            logIo(),
            [](std::shared_ptr<SenderCore> s, HttpCore* me,
               std::vector<std::string> batch) -> Task<void> {
              co_await me->deliver(std::move(batch));
              --me->in_flight_;
              me->wake();
            }(self, this, std::move(one)),
            asio::detached);
        continue;
      }
      if (queue_.max_batch_size > 1 && !is_closed) {
        // Kong's coalescing: wait for a full batch at most max_coalescing_delay.
        const uint64_t deadline =
            nowMs() + static_cast<uint64_t>(queue_.max_coalescing_delay_s * 1000);
        for (size_t have = n; have < queue_.max_batch_size;) {
          const uint64_t now = nowMs();
          if (deadline < now + kCoalesceMinMs) {
            break;
          }
          co_await sleep(deadline, have, false, queue_.max_batch_size);
          have = queued(&is_closed);
          if (is_closed) {
            break;
          }
        }
      }
      co_await deliver(take(queue_.max_batch_size));
    }
    for (ConnPtr& c : idle_) {
      c->close();
    }
    idle_.clear();
  }

 private:
  uint64_t idleDeadline() const {
    uint64_t d = kForever;
    for (const ConnPtr& c : idle_) {
      d = std::min(d, c->idle_since_ms + target_.keepalive_ms);
    }
    return d;
  }
  void closeExpiredIdle() {
    const uint64_t now = nowMs();
    for (auto it = idle_.begin(); it != idle_.end();) {
      if (now >= (*it)->idle_since_ms + target_.keepalive_ms) {
        (*it)->close();
        it = idle_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Kong's send_entries: one object for max_batch_size 1, else a JSON array.
  std::string request(const std::vector<std::string>& batch) const {
    std::string body;
    if (queue_.max_batch_size == 1 && batch.size() == 1) {
      body = batch[0];
    } else {
      body.push_back('[');
      for (size_t i = 0; i < batch.size(); ++i) {
        if (i > 0) body.push_back(',');
        body.append(batch[i]);
      }
      body.push_back(']');
    }
    std::string r = target_.method;
    r.append(" ").append(target_.path).append(" HTTP/1.1\r\nHost: ");
    if (target_.host.find(':') != std::string::npos) {
      r.append("[").append(target_.host).append("]");  // an IPv6 literal
    } else {
      r.append(target_.host);
    }
    if (target_.port != (target_.tls ? 443 : 80)) {
      r.append(":").append(std::to_string(target_.port));
    }
    r.append("\r\nContent-Type: ").append(target_.content_type);
    r.append("\r\nContent-Length: ").append(std::to_string(body.size()));
    if (!target_.authorization.empty()) {
      r.append("\r\nAuthorization: ").append(target_.authorization);
    }
    for (const auto& [name, value] : target_.headers) {
      r.append("\r\n").append(name).append(": ").append(value);
    }
    r.append("\r\n\r\n").append(body);
    return r;
  }

  // Kong's queue handle(): retried with exponential backoff until max_retry_time.
  Task<void> deliver(std::vector<std::string> batch) {
    if (batch.empty()) {
      co_return;
    }
    const std::string req = request(batch);
    const uint64_t start = nowMs();
    for (uint32_t retry = 0;; ++retry) {
      std::string err;
      if (co_await post(req, &err)) {
        counters_.sent->inc(batch.size());
        co_return;
      }
      const double elapsed_s = static_cast<double>(nowMs() - start) / 1000;
      if (elapsed_s > queue_.max_retry_time_s || closed()) {
        // A sender whose configs are gone tries what it still holds once.
        counters_.failed->inc(batch.size());
        warn("http-log: " + target_.host + ":" + std::to_string(target_.port) + ": " + err +
             "; " + std::to_string(batch.size()) + " entries lost");
        co_return;
      }
      warn("http-log: " + target_.host + ":" + std::to_string(target_.port) + ": " + err +
           " (retrying)");
      const double delay_s = std::min(queue_.max_retry_delay_s,
                                      std::ldexp(queue_.initial_retry_delay_s,
                                                 static_cast<int>(std::min<uint32_t>(retry, 60))));
      asio::steady_timer timer(logIo());
      timer.expires_after(std::chrono::microseconds(static_cast<int64_t>(delay_s * 1e6)));
      error_code ec;
      co_await timer.async_wait(awaitWith(ec));
    }
  }

  ConnPtr acquire() {
    const uint64_t now = nowMs();
    while (!idle_.empty()) {
      ConnPtr c = std::move(idle_.back());
      idle_.pop_back();
      if (now < c->idle_since_ms + target_.keepalive_ms && !c->stale()) {
        return c;
      }
      c->close();
    }
    return nullptr;
  }

  // One request and its response; true for a status below 300.
  Task<bool> post(const std::string& req, std::string* err) {
    ConnPtr c = acquire();
    if (c == nullptr) {
      c = std::make_shared<Conn>(target_.tls);
      if (!co_await connectTo(c, target_.host, target_.port, target_.timeout_ms, target_.host,
                              err)) {
        c->close();
        *err = "failed request: " + *err;
        co_return false;
      }
    }
    if (!co_await writeAll(c, req, target_.timeout_ms, err)) {
      c->close();
      co_return false;
    }
    std::string in;
    http::ResponseHead head;
    bool eof = false;
    for (;;) {
      http::HeadParser parser;
      const http::HeadParser::Status st = parser.parseResponse(in, false, &head);
      if (st == http::HeadParser::Status::kError) {
        c->close();
        *err = "invalid response";
        co_return false;
      }
      if (st == http::HeadParser::Status::kComplete) {
        if (head.status >= 100 && head.status < 200) {
          in.erase(0, head.head_bytes);  // an interim response: the real one follows
          continue;
        }
        break;
      }
      if (!co_await readSome(c, &in, target_.timeout_ms, &eof, err)) {
        c->close();
        co_return false;
      }
    }
    const int status = head.status;
    const bool keep = head.keep_alive && head.body != http::BodyKind::kUntilClose;
    const http::BodyKind kind = head.body;
    const uint64_t length = head.content_length;
    in.erase(0, head.head_bytes);  // `head` views are dead from here
    // Kong reads the whole body (and drops it); so do we, without keeping it.
    bool body_ok = true;
    if (kind == http::BodyKind::kContentLength) {
      uint64_t have = in.size();
      while (have < length) {
        in.clear();
        if (!co_await readSome(c, &in, target_.timeout_ms, &eof, err)) {
          body_ok = false;
          break;
        }
        have += in.size();
      }
    } else if (kind == http::BodyKind::kChunked) {
      http::ChunkedDecoder decoder;
      size_t consumed = 0;
      auto r = decoder.decode(in, &consumed, [](std::string_view) {});
      while (r == http::ChunkedDecoder::Result::kNeedMore) {
        in.clear();
        if (!co_await readSome(c, &in, target_.timeout_ms, &eof, err)) {
          break;
        }
        r = decoder.decode(in, &consumed, [](std::string_view) {});
      }
      body_ok = r == http::ChunkedDecoder::Result::kDone;
    } else if (kind == http::BodyKind::kUntilClose) {
      while (co_await readSome(c, &in, target_.timeout_ms, &eof, err)) {
        in.clear();
      }
      body_ok = eof;
    }
    if (keep && body_ok) {
      c->idle_since_ms = nowMs();
      idle_.push_back(std::move(c));
    } else {
      c->close();
    }
    if (status >= 300) {
      *err = "returned status code " + std::to_string(status);
      co_return false;
    }
    co_return true;
  }

  const HttpTarget target_;
  const QueueOptions queue_;
  std::vector<ConnPtr> idle_;  // kept connections (I/O thread)
  int in_flight_ = 0;          // concurrency_limit -1 deliveries (I/O thread)
};

// ---- tcp-log: lines on one kept connection.
class TcpCore final : public SenderCore {
 public:
  TcpCore(const StreamTarget& target, size_t max_entries, const Counters& counters)
      : SenderCore(max_entries, 0, counters), target_(target) {}

 protected:
  Task<void> run(std::shared_ptr<SenderCore> self) override {
    for (;;) {
      bool is_closed = false;
      const size_t n = queued(&is_closed);
      if (n == 0) {
        if (is_closed) {
          break;
        }
        co_await sleep(conn_ ? conn_->idle_since_ms + target_.keepalive_ms : kForever, 0);
        if (conn_ && nowMs() >= conn_->idle_since_ms + target_.keepalive_ms) {
          conn_->close();  // Kong's setkeepalive(keepalive): idle longer, closed
          conn_.reset();
        }
        continue;
      }
      std::vector<std::string> batch = take(n, kStreamBatchBytes);
      std::string data;
      for (const std::string& e : batch) {
        data.append(e).push_back('\n');
      }
      std::string err;
      bool ok = true;
      if (conn_ && (nowMs() >= conn_->idle_since_ms + target_.keepalive_ms || conn_->stale())) {
        conn_->close();
        conn_.reset();
      }
      if (!conn_) {
        conn_ = std::make_shared<Conn>(target_.tls);
        ok = co_await connectTo(conn_, target_.host, target_.port, target_.timeout_ms,
                                target_.tls_sni, &err);
      }
      if (ok) {
        ok = co_await writeAll(conn_, data, target_.timeout_ms, &err);
      }
      if (ok) {
        conn_->idle_since_ms = nowMs();
        counters_.sent->inc(batch.size());
      } else {
        // Kong logs the error and drops the entry (no retry).
        conn_->close();
        conn_.reset();
        counters_.failed->inc(batch.size());
        warn("tcp-log: " + target_.host + ":" + std::to_string(target_.port) + ": " + err +
             "; " + std::to_string(batch.size()) + " entries lost");
      }
    }
    if (conn_) {
      conn_->close();
    }
  }

 private:
  const StreamTarget target_;
  ConnPtr conn_;
};

// ---- udp-log: a datagram per entry.
class UdpCore final : public SenderCore {
 public:
  UdpCore(const StreamTarget& target, size_t max_entries, const Counters& counters)
      : SenderCore(max_entries, 0, counters), target_(target), socket_(logIo()) {}

 protected:
  Task<void> run(std::shared_ptr<SenderCore> self) override {
    for (;;) {
      bool is_closed = false;
      const size_t n = queued(&is_closed);
      if (n == 0) {
        if (is_closed) {
          break;
        }
        co_await sleep(kForever, 0);
        continue;
      }
      std::vector<std::string> batch = take(n, kStreamBatchBytes);
      error_code ec;
      std::string err;
      if (!socket_.is_open()) {
        udp::resolver resolver(logIo());
        const auto endpoints = co_await resolver.async_resolve(
            target_.host, std::to_string(target_.port), awaitWith(ec));
        if (!ec && !endpoints.empty()) {
          peer_ = endpoints.begin()->endpoint();
          socket_.open(peer_.protocol(), ec);
          if (!ec) socket_.connect(peer_, ec);
        } else if (!ec) {
          ec = asio::error::host_not_found;
        }
        if (ec) {
          socket_.close(ec);
          counters_.failed->inc(batch.size());
          warn("udp-log: could not connect to " + target_.host + ":" +
               std::to_string(target_.port) + ": " + ec.message());
          continue;
        }
      }
      size_t sent = 0;
      for (const std::string& e : batch) {
        // A refused earlier datagram (ICMP) shows as an error on a later send: retry once.
        for (int attempt = 0; attempt < 2; ++attempt) {
          co_await socket_.async_send(asio::buffer(e), awaitWith(ec));
          if (ec != asio::error::connection_refused) break;
        }
        if (ec) {
          err = ec.message();
        } else {
          ++sent;
        }
      }
      counters_.sent->inc(sent);
      if (sent < batch.size()) {
        counters_.failed->inc(batch.size() - sent);
        warn("udp-log: could not send data to " + target_.host + ":" +
             std::to_string(target_.port) + ": " + err);
      }
    }
    error_code ec;
    socket_.close(ec);
  }

 private:
  const StreamTarget target_;
  udp::socket socket_;
  udp::endpoint peer_;
};

// Live senders by key (configs sharing a destination share the sender).
std::mutex g_registry_mu;
std::map<std::string, std::weak_ptr<Sender>>& registry() {
  static auto* const kMap = new std::map<std::string, std::weak_ptr<Sender>>();
  return *kMap;
}

template <typename Make>
std::shared_ptr<Sender> shared(const std::string& key, Make make) {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  auto& reg = registry();
  for (auto it = reg.begin(); it != reg.end();) {
    it = it->second.expired() ? reg.erase(it) : std::next(it);
  }
  if (auto it = reg.find(key); it != reg.end()) {
    if (std::shared_ptr<Sender> s = it->second.lock()) {
      return s;
    }
  }
  std::shared_ptr<SenderCore> core = make();
  core->start();
  auto s = std::make_shared<Sender>(std::move(core));
  reg[key] = s;
  return s;
}

}  // namespace

std::shared_ptr<Sender> Sender::http(const std::string& key, const HttpTarget& target,
                                     const QueueOptions& queue, const Counters& counters) {
  return shared("http|" + key, [&] { return std::make_shared<HttpCore>(target, queue, counters); });
}

std::shared_ptr<Sender> Sender::tcp(const std::string& key, const StreamTarget& target,
                                    size_t max_entries, const Counters& counters) {
  return shared("tcp|" + key,
                [&] { return std::make_shared<TcpCore>(target, max_entries, counters); });
}

std::shared_ptr<Sender> Sender::udp(const std::string& key, const StreamTarget& target,
                                    size_t max_entries, const Counters& counters) {
  return shared("udp|" + key,
                [&] { return std::make_shared<UdpCore>(target, max_entries, counters); });
}

Sender::~Sender() { core_->close(); }

std::string Sender::push(std::string entry) { return core_->push(std::move(entry)); }

size_t queuedEntries() {
  const int64_t n = g_queued.load(std::memory_order_relaxed);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

}  // namespace portico::dp::plugins::logging
