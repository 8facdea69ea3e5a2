// One proxy worker (internal to data_plane/proxy): an io_context, its listener, its sessions
// (client connections), its upstream keep-alive pool and its stats shard. Everything here is
// touched only by the worker's own thread, except beginDrain()/stop() which post to it.
#pragma once

#include <utility>  // Boost 1.74 asio/awaitable.hpp uses std::exchange without it

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "data_plane/proxy/io_buffer.h"
#include "data_plane/proxy/proxy_options.h"
#include "data_plane/proxy/proxy_stats.h"
#include "data_plane/snapshot.h"

namespace portico::dp {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Everything on a worker uses the io_context's concrete executor rather than Asio's default
// type-erased any_io_executor: perf showed any_executor copies/destroys on every async op.
using Executor = asio::io_context::executor_type;
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Acceptor = asio::basic_socket_acceptor<tcp, Executor>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;
template <class T>
using Task = asio::awaitable<T, Executor>;
inline constexpr asio::use_awaitable_t<Executor> kUseAwaitable{};
using SslStream = asio::ssl::stream<Socket&>;

// One side of a proxied exchange: a socket, plain or wrapped in TLS. The helpers below pick
// the layer at run time and return the operation's awaitable without a coroutine frame of
// their own (both branches have the same awaitable type).
struct Stream {
  Socket* sock = nullptr;
  SslStream* tls = nullptr;
};
template <class Buffers, class Token>
inline auto asyncReadSome(Stream s, const Buffers& b, Token&& token) {
  return s.tls != nullptr ? s.tls->async_read_some(b, token) : s.sock->async_read_some(b, token);
}
template <class Buffers, class Token>
inline auto asyncWriteAll(Stream s, const Buffers& b, Token&& token) {
  return s.tls != nullptr ? asio::async_write(*s.tls, b, token)
                          : asio::async_write(*s.sock, b, token);
}

inline uint64_t nowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// A connection to an upstream, pooled between requests.
inline constexpr size_t kUpstreamBufferSize = 16 * 1024;
struct UpstreamConn {
  explicit UpstreamConn(asio::io_context& io) : socket(io), in(kUpstreamBufferSize) {}
  Socket socket;
  std::optional<SslStream> tls;  // https services; wraps `socket`
  IoBuffer in;
  std::string key;  // pool key "address:port"
  uint64_t idle_since_ms = 0;
  uint32_t requests = 0;
};
using UpstreamConnPtr = std::unique_ptr<UpstreamConn>;
inline Stream streamOf(UpstreamConn& c) { return Stream{&c.socket, c.tls ? &*c.tls : nullptr}; }

// Per-worker keep-alive pool: LIFO per upstream address, so the warmest connection is reused.
class UpstreamPool {
 public:
  explicit UpstreamPool(const ProxyOptions& options) : options_(options) {}
  // A pooled connection to `key`, or nullptr. Connections idle for a while are checked for a
  // pending EOF first (the upstream may have closed them meanwhile).
  UpstreamConnPtr acquire(const std::string& key, uint64_t now_ms);
  void release(UpstreamConnPtr conn, uint64_t now_ms);
  // Closes connections idle longer than the idle timeout.
  void sweep(uint64_t now_ms);
  void clear() { idle_.clear(); }

 private:
  const ProxyOptions& options_;
  absl::flat_hash_map<std::string, std::vector<UpstreamConnPtr>> idle_;
};

class Session;
namespace vitals {
class WorkerVitals;
}

class Worker {
 public:
  // `tls_context` (the HTTPS listener's default context) may be null: no HTTPS listener.
  Worker(size_t index, const ProxyOptions& options, SnapshotStore& store, WorkerStats& stats,
         asio::ssl::context* tls_context);
  ~Worker();

  // Binds this worker's listener on the options' address and `port` with SO_REUSEPORT.
  absl::Status listen(uint16_t port);
  uint16_t boundPort() const;
  // Same for the HTTPS listener (options().ssl_listen_address).
  absl::Status listenTls(uint16_t port);
  uint16_t boundTlsPort() const { return tls_listen_port_; }
  // Runs the event loop on the calling thread until stop().
  void run();
  void beginDrain();  // thread-safe
  void stop();        // thread-safe

  // Worker-thread only.
  asio::io_context& io() { return *io_; }
  const ProxyOptions& options() const { return options_; }
  SnapshotStore& store() { return store_; }
  WorkerStats& stats() { return stats_; }
  UpstreamPool& pool() { return pool_; }
  bool draining() const { return draining_; }
  uint16_t listenPort() const { return listen_port_; }
  uint16_t tlsListenPort() const { return tls_listen_port_; }
  asio::ssl::context* tlsContext() { return tls_context_; }
  const std::string& date() const { return date_; }
  void add(Session* s);
  void remove(Session* s);
  // This worker's vitals shard, or null when vitals are off.
  vitals::WorkerVitals* vitals() { return vitals_; }

 private:
  void tick();
  void trimAfterSpike();

  size_t index_;
  const ProxyOptions& options_;
  SnapshotStore& store_;
  WorkerStats& stats_;
  UpstreamPool pool_;
  Session* sessions_ = nullptr;  // intrusive list head
  bool draining_ = false;
  uint16_t listen_port_ = 0;
  uint16_t tls_listen_port_ = 0;
  asio::ssl::context* tls_context_ = nullptr;
  std::string date_;
  uint64_t last_sweep_ms_ = 0;
  vitals::WorkerVitals* vitals_ = nullptr;  // options_.vitals' shard of this worker
  uint64_t connections_peak_ = 0;  // most open connections since memory was last trimmed
  // Destroyed explicitly in ~Worker in a safe order (sockets before their io_context).
  std::unique_ptr<asio::io_context> io_;
  std::unique_ptr<Acceptor> acceptor_;
  std::unique_ptr<Acceptor> tls_acceptor_;
  std::unique_ptr<Timer> tick_timer_;
};

}  // namespace portico::dp
