// portico-cp's Dev Portal listener: the --portal_* flags (defined in portal_flags.cc, listed
// by --help), and the listener they describe, the Admin API's HTTP transport (deadlines,
// connection caps, body limit, optional TLS) serving PortalWeb.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "control_plane/admin_api/http_server.h"
#include "control_plane/portal/portal_web.h"

namespace portico::cp::portal {

class PortalServer {
 public:
  // Starts the listener the flags describe; nullptr when --portal_listen=off. `store` must
  // outlive the server. kInvalidArgument for bad flags, kUnavailable when it cannot bind.
  static absl::StatusOr<std::unique_ptr<PortalServer>> startFromFlags(PgConfigStore& store);
  // The same from explicit options (tests).
  static absl::StatusOr<std::unique_ptr<PortalServer>> start(PgConfigStore& store,
                                                             AdminServerOptions server,
                                                             const PortalOptions& portal);

  int port() const { return http_->port(); }
  void shutdown() { http_->shutdown(); }

 private:
  std::unique_ptr<PortalWeb> web_;             // outlives http_, whose workers call it
  std::unique_ptr<AdminHttpServer> http_;
};

}  // namespace portico::cp::portal
