#include "control_plane/portal/portal_server.h"

#include <algorithm>
#include <string>

#include "absl/flags/flag.h"
#include "common/logging.h"

constexpr char kDefaultPortalListen[] = "127.0.0.1:8003";
ABSL_FLAG(std::string, portal_listen, kDefaultPortalListen,
          "Dev Portal listener (host:port): published API docs, developer sign-up, "
          "applications and their keys; 'off' disables it. When the default port is taken, "
          "the control plane runs without a portal (a warning says so); a port given here "
          "must be free");
ABSL_FLAG(std::string, portal_ssl_cert, "",
          "Dev Portal TLS certificate chain (PEM); with --portal_ssl_key the portal serves "
          "HTTPS only and its cookies are Secure");
ABSL_FLAG(std::string, portal_ssl_key, "", "Dev Portal TLS private key (PEM)");
ABSL_FLAG(int32_t, portal_login_attempts_per_minute, 10,
          "Dev Portal login attempts allowed per email per minute (per client address: 4 times "
          "as many); more answer 429");
ABSL_FLAG(int32_t, portal_signups_per_hour, 20,
          "Dev Portal sign-ups allowed per client address per hour (per email: 3); more answer "
          "429; 0 = no limit");

namespace portico::cp::portal {

absl::StatusOr<std::unique_ptr<PortalServer>> PortalServer::start(PgConfigStore& store,
                                                                  AdminServerOptions server,
                                                                  const PortalOptions& portal) {
  auto out = std::unique_ptr<PortalServer>(new PortalServer());
  out->web_ = std::make_unique<PortalWeb>(store, portal);
  PortalWeb* web = out->web_.get();
  server.handler = [web](const ApiRequest& request) { return web->handle(request); };
  auto http = AdminHttpServer::start(store, server);
  if (!http.ok()) {
    return http.status();
  }
  out->http_ = *std::move(http);
  return out;
}

absl::StatusOr<std::unique_ptr<PortalServer>> PortalServer::startFromFlags(PgConfigStore& store) {
  const std::string listen = absl::GetFlag(FLAGS_portal_listen);
  if (listen == "off") {
    return std::unique_ptr<PortalServer>();
  }
  AdminServerOptions server;
  server.listen_address = listen;
  server.listen_flag = "--portal_listen";
  server.ssl_cert_path = absl::GetFlag(FLAGS_portal_ssl_cert);
  server.ssl_key_path = absl::GetFlag(FLAGS_portal_ssl_key);
  if (server.ssl_cert_path.empty() != server.ssl_key_path.empty()) {
    return absl::InvalidArgumentError("--portal_ssl_cert and --portal_ssl_key go together");
  }
  // Few threads: a login is a 32 MiB scrypt, and the portal shares the Admin API's
  // PostgreSQL pool. Bodies are small JSON forms; the Admin API's header deadline applies.
  server.db_workers = 2;
  server.write_workers = 2;
  server.max_body_bytes = 64 << 10;
  server.max_header_bytes = 16 << 10;
  server.header_timeout = std::chrono::seconds(30);
  server.body_timeout = std::chrono::seconds(30);
  server.max_connections = 1024;
  server.max_connections_per_client = 64;
  PortalOptions portal;
  portal.login_attempts_per_minute =
      static_cast<uint32_t>(std::max(1, absl::GetFlag(FLAGS_portal_login_attempts_per_minute)));
  portal.signups_per_hour =
      static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_portal_signups_per_hour)));
  auto started = start(store, server, portal);
  // Several control planes on one host (replicas, tests) cannot all have the default port:
  // only a port asked for is worth failing over.
  if (absl::IsUnavailable(started.status()) && listen == kDefaultPortalListen) {
    LOG_WARN("portal", "no Dev Portal: %s (set --portal_listen to another port, or off)",
             started.status().message());
    return std::unique_ptr<PortalServer>();
  }
  return started;
}

}  // namespace portico::cp::portal
