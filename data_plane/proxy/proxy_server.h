// The data plane's proxy engine: N workers, each an asio::io_context on its own thread with its
// own SO_REUSEPORT listener, its connections (for life) and its upstream keep-alive pools.
// Each request reads the current Snapshot once from the store and keeps it until it is done.
#pragma once

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "data_plane/proxy/proxy_options.h"
#include "data_plane/proxy/proxy_stats.h"
#include "data_plane/tls/tls.h"
#include "data_plane/snapshot.h"

namespace portico::dp {

class Worker;

class ProxyServer {
 public:
  // Binds every worker's listener (fails with kUnavailable naming the address if it cannot)
  // and starts the worker threads. `store` must outlive the server.
  static absl::StatusOr<std::unique_ptr<ProxyServer>> start(const ProxyOptions& options,
                                                            SnapshotStore& store);
  ~ProxyServer();  // stop()s if still running

  uint16_t port() const { return port_; }
  uint16_t tlsPort() const { return tls_port_; }  // 0 when the HTTPS listener is off
  const ProxyStats& stats() const { return *stats_; }

  // Graceful drain (SIGTERM): stops accepting, closes idle keep-alive connections, lets
  // in-flight requests finish (their responses carry Connection: close), and waits until no
  // client connection is left or `timeout` passes. Returns true if everything drained.
  // Call from a non-worker thread; then call stop().
  bool drain(std::chrono::milliseconds timeout);
  // Stops the workers at once (open connections are dropped) and joins their threads.
  void stop();

 private:
  ProxyServer() = default;

  ProxyOptions options_;  // workers keep a reference to it
  uint16_t port_ = 0;
  uint16_t tls_port_ = 0;
  tls::SslContextPtr tls_context_;  // the HTTPS listener's default certificate + SNI callback
  std::unique_ptr<ProxyStats> stats_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
};

}  // namespace portico::dp
