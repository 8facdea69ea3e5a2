// AdminHttpServer: HTTP/1.1 (keep-alive) transport of the Admin API on Boost.Beast, plain or
// TLS (OpenSSL). One I/O thread owns every socket; each request's handling (which blocks on
// PostgreSQL) runs on a separate pool of DB worker threads (one pool for reads, a larger one
// for writes), and the response is posted back to the I/O thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/declarative/declarative.h"
#include "control_plane/admin_api/admin_api.h"
#include "control_plane/admin_api/cors.h"

namespace portico::cp {

struct AdminServerOptions {
  std::string listen_address = "127.0.0.1:8001";  // host:port; port 0 picks a free one
  int db_workers = 4;                             // threads running AdminApi::handle (reads)
  // Threads running writes (POST/PUT/PATCH/DELETE); 0 = 4 x db_workers. A write mostly
  // sleeps while its group's batch commits (group commit, pg_store_impl.h), so more writes
  // waiting means bigger batches, not more database load.
  int write_workers = 0;
  uint64_t max_body_bytes = 1 << 20;              // larger bodies answer 413
  // POST /config (a whole declarative file): the loader's own limit.
  uint64_t max_config_body_bytes = declarative::kMaxFileBytes;
  uint32_t max_header_bytes = 64 << 10;           // larger request heads answer 431
  // The whole request head must arrive within this of the connection's last response (or
  // its start), as nginx's client_header_timeout; the body within body_timeout of its head.
  std::chrono::milliseconds header_timeout{60000};
  std::chrono::milliseconds body_timeout{60000};
  // Connections beyond these are answered 503 and closed at once (0 = no cap).
  uint32_t max_connections = 2048;
  uint32_t max_connections_per_client = 256;
  bool require_auth = false;                      // --admin_auth=on (see AdminApiOptions)
  std::string ssl_cert_path;                      // both set: serve HTTPS only (PEM files)
  std::string ssl_key_path;
  std::function<void(metrics::Writer&)> metrics;  // see AdminApiOptions::metrics
  decltype(AdminApiOptions::cache_purge) cache_purge;  // see AdminApiOptions::cache_purge
  decltype(AdminApiOptions::vitals) vitals;  // see AdminApiOptions::vitals
  decltype(AdminApiOptions::provisioning) provisioning;  // see AdminApiOptions::provisioning
  fleet::FleetEndpoints* fleet = nullptr;  // see AdminApiOptions::fleet
  // Access-Control-Allow-Origin on every answer (--admin_gui_url); default: any origin.
  CorsOrigins cors;
  // Set: this listener is not the Admin API but serves `handler` on the same transport (the
  // Dev Portal): no admin tokens, no CORS headers, no larger bodies for /config or catalog
  // uploads, and ApiRequest::headers, client_address and tls are filled. Called on a worker
  // thread; must be thread-safe. `listen_flag` names the flag in listen errors.
  std::function<ApiResponse(const ApiRequest&)> handler;
  std::string listen_flag = "--admin_listen";
};

class AdminHttpServer {
 public:
  virtual ~AdminHttpServer() = default;

  // Binds and starts serving. `store` must outlive the server. kInvalidArgument for a bad
  // address or unreadable TLS certificate/key, kUnavailable if it cannot be bound.
  static absl::StatusOr<std::unique_ptr<AdminHttpServer>> start(PgConfigStore& store,
                                                                const AdminServerOptions& options);

  virtual int port() const = 0;
  // Stops accepting, closes connections, joins every thread; idempotent.
  virtual void shutdown() = 0;
};

}  // namespace portico::cp
