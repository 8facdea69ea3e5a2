#include "data_plane/proxy/proxy_server.h"

#include "common/logging.h"
#include "data_plane/proxy/worker.h"

namespace portico::dp {

absl::StatusOr<std::unique_ptr<ProxyServer>> ProxyServer::start(const ProxyOptions& options,
                                                                SnapshotStore& store) {
  std::unique_ptr<ProxyServer> server(new ProxyServer());
  server->options_ = options;
  const size_t n = options.workers == 0 ? 1 : options.workers;
  server->stats_ = std::make_unique<ProxyStats>(n);
  uint16_t port = options.listen_port;
  for (size_t i = 0; i < n; ++i) {
    auto worker = std::make_unique<Worker>(i, server->options_, store, server->stats_->shard(i));
    absl::Status st = worker->listen(port);
    if (!st.ok()) {
      return st;
    }
    port = worker->boundPort();  // port 0: the first worker picks, the others share it
    server->workers_.push_back(std::move(worker));
  }
  server->port_ = port;
  for (auto& w : server->workers_) {
    Worker* worker = w.get();
    server->threads_.emplace_back([worker] { worker->run(); });
  }
  LOG_INFO("proxy", "listening on %s:%d with %d worker(s)", options.listen_address, port,
           static_cast<int>(n));
  return server;
}

ProxyServer::~ProxyServer() { stop(); }

bool ProxyServer::drain(std::chrono::milliseconds timeout) {
  for (auto& w : workers_) {
    w->beginDrain();
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (stats_->totals().connections_active == 0) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return stats_->totals().connections_active == 0;
}

void ProxyServer::stop() {
  for (auto& w : workers_) {
    w->stop();
  }
  for (auto& t : threads_) {
    if (t.joinable()) {
      t.join();
    }
  }
  threads_.clear();
  workers_.clear();
}

}  // namespace portico::dp
