#include "control_plane/console/console_server.h"

#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

constexpr char kDefaultConsoleListen[] = "127.0.0.1:8002";
ABSL_FLAG(std::string, console_listen, kDefaultConsoleListen,
          "web console listener (host:port): Runtime Manager, entities, ServiceHub catalog, "
          "vitals; the browser calls the Admin API itself. 'off' disables it. When the "
          "default port is taken, the control plane runs without a console (a warning says "
          "so); a port given here must be free");
ABSL_FLAG(std::string, admin_gui_api_url, "",
          "the Admin API's URL as the console's browsers reach it (Kong's admin_gui_api_url); "
          "empty: the console page's own host, with --admin_listen's port and scheme");

namespace portico::cp::console {

absl::StatusOr<std::unique_ptr<ConsoleServer>> ConsoleServer::start(
    PgConfigStore& store, AdminServerOptions server, const ConsoleOptions& console) {
  auto out = std::unique_ptr<ConsoleServer>(new ConsoleServer());
  out->options_ = std::make_unique<ConsoleOptions>(console);
  const ConsoleOptions* options = out->options_.get();
  server.handler = [options](const ApiRequest& request) {
    return handleConsoleRequest(*options, request);
  };
  auto http = AdminHttpServer::start(store, server);
  if (!http.ok()) {
    return http.status();
  }
  out->http_ = *std::move(http);
  return out;
}

absl::StatusOr<std::unique_ptr<ConsoleServer>> ConsoleServer::startFromFlags(
    PgConfigStore& store, const AdminServerOptions& admin, int admin_port) {
  const std::string listen = absl::GetFlag(FLAGS_console_listen);
  if (listen == "off") {
    return std::unique_ptr<ConsoleServer>();
  }
  AdminServerOptions server;
  server.listen_address = listen;
  server.listen_flag = "--console_listen";
  // The console's pages over the Admin API's TLS: one certificate for the two listeners a
  // browser uses (mixed content would block an https page calling http, and the reverse).
  server.ssl_cert_path = admin.ssl_cert_path;
  server.ssl_key_path = admin.ssl_key_path;
  // Static files from memory: no database, a couple of threads. Only GETs without bodies.
  server.db_workers = 2;
  server.write_workers = 1;
  server.max_body_bytes = 4 << 10;
  server.max_header_bytes = 16 << 10;
  server.header_timeout = std::chrono::seconds(30);
  server.body_timeout = std::chrono::seconds(10);
  server.max_connections = 512;
  server.max_connections_per_client = 64;
  ConsoleOptions console;
  console.admin_api_url = absl::GetFlag(FLAGS_admin_gui_api_url);
  console.admin_port = admin_port;
  console.admin_tls = !admin.ssl_cert_path.empty();
  console.admin_auth = admin.require_auth;
  auto started = start(store, server, console);
  // With --admin_gui_url set, the Admin API answers only the origins listed: the console's
  // calls fail in the browser unless it is one of them. Its host cannot be known here (the
  // browser's), its port can.
  if (started.ok() && !admin.cors.origins().empty()) {
    const std::string port = absl::StrCat(":", (*started)->port());
    bool listed = false;
    for (const std::string& origin : admin.cors.origins()) {
      listed = listed || (origin.size() > port.size() &&
                          origin.compare(origin.size() - port.size(), port.size(), port) == 0);
    }
    if (!listed) {
      LOG_WARN("console",
               "--admin_gui_url lists no origin on the console's port %d: browsers will refuse "
               "the Admin API's answers to the console (add e.g. http://127.0.0.1%s)",
               (*started)->port(), port);
    }
  }
  // Several control planes on one host (replicas, tests) cannot all have the default port:
  // only a port asked for is worth failing over.
  if (absl::IsUnavailable(started.status()) && listen == kDefaultConsoleListen) {
    LOG_WARN("console", "no web console: %s (set --console_listen to another port, or off)",
             started.status().message());
    return std::unique_ptr<ConsoleServer>();
  }
  return started;
}

}  // namespace portico::cp::console
