// The web console's listener, started by portico-cp from its flags (--console_listen,
// --admin_gui_api_url; defined in console_flags.cc, which --help lists): the Admin API's HTTP
// transport (AdminHttpServer) with the console's own handler (console_site.h), deadlines and
// limits.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "control_plane/admin_api/http_server.h"
#include "control_plane/console/console_site.h"

namespace portico::cp::console {

class ConsoleServer {
 public:
  // Serves the console on `server.listen_address`. kInvalidArgument for a bad address,
  // kUnavailable when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<ConsoleServer>> start(PgConfigStore& store,
                                                              AdminServerOptions server,
                                                              const ConsoleOptions& console);
  // From the flags; `admin` and `admin_port` are the running Admin API's (the app is told
  // where it is). Null with --console_listen=off, or when the default port is taken (another
  // control plane on this host: logged); a port given explicitly must be free.
  static absl::StatusOr<std::unique_ptr<ConsoleServer>> startFromFlags(
      PgConfigStore& store, const AdminServerOptions& admin, int admin_port);

  int port() const { return http_->port(); }
  void shutdown() { http_->shutdown(); }

 private:
  ConsoleServer() = default;
  std::unique_ptr<ConsoleOptions> options_;
  std::unique_ptr<AdminHttpServer> http_;
};

}  // namespace portico::cp::console
