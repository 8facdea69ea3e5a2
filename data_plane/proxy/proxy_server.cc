#include "data_plane/proxy/proxy_server.h"

#include <openssl/ssl.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "data_plane/proxy/worker.h"

namespace portico::dp {
namespace {

// Runs inside the handshake on the worker thread: picks the certificate for the SNI from the
// snapshot current at that moment. SSL_set_SSL_CTX takes its own reference on the context, so
// the connection keeps it even if a newer snapshot replaces the table meanwhile.
int onServerName(SSL* ssl, int* /*alert*/, void* arg) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) {
    return SSL_TLSEXT_ERR_OK;
  }
  SnapshotConstSharedPtr snap = static_cast<SnapshotStore*>(arg)->get();
  if (snap) {
    if (SSL_CTX* ctx = snap->certificates().find(name); ctx != nullptr) {
      SSL_set_SSL_CTX(ssl, ctx);
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ProxyServer>> ProxyServer::start(const ProxyOptions& options,
                                                                SnapshotStore& store) {
  std::unique_ptr<ProxyServer> server(new ProxyServer());
  server->options_ = options;
  const size_t n = options.workers == 0 ? 1 : options.workers;
  server->stats_ = std::make_unique<ProxyStats>(n);
  if (options.ssl_enabled) {
    std::string cert = options.ssl_cert_pem;
    std::string key = options.ssl_key_pem;
    if (cert.empty() || key.empty()) {
      auto generated = tls::generateSelfSigned("localhost");
      if (!generated.ok()) {
        return generated.status();
      }
      cert = generated->first;
      key = generated->second;
    }
    auto ctx = tls::makeServerContext(cert, key);
    if (!ctx.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("default certificate: ", ctx.status().message()));
    }
    server->tls_context_ = *std::move(ctx);
    SSL_CTX_set_tlsext_servername_callback(server->tls_context_->native_handle(), onServerName);
    SSL_CTX_set_tlsext_servername_arg(server->tls_context_->native_handle(), &store);
  }
  uint16_t port = options.listen_port;
  uint16_t tls_port = options.ssl_listen_port;
  for (size_t i = 0; i < n; ++i) {
    auto worker = std::make_unique<Worker>(i, server->options_, store, server->stats_->shard(i),
                                           server->tls_context_.get());
    absl::Status st = worker->listen(port);
    if (!st.ok()) {
      return st;
    }
    port = worker->boundPort();  // port 0: the first worker picks, the others share it
    if (options.ssl_enabled) {
      st = worker->listenTls(tls_port);
      if (!st.ok()) {
        return st;
      }
      tls_port = worker->boundTlsPort();
    }
    server->workers_.push_back(std::move(worker));
  }
  server->port_ = port;
  server->tls_port_ = options.ssl_enabled ? tls_port : 0;
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
