// SyncServer: the control plane's side of ConfigSync. Serves DP streams on the cluster
// listener, encodes each new generation of a group once and fans it out to that group's DPs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "control_plane/store/store.h"

namespace portico::cp {

struct SyncServerOptions {
  std::string listen_address = "0.0.0.0:8005";  // host:port; port 0 picks a free one
  bool insecure = false;                         // plain text (--cluster_insecure)
  std::string cert_path, key_path, ca_path;      // mTLS material (--cluster_cert/_key/_ca)
  uint32_t heartbeat_interval_ms = 5000;
};

class SyncServer {
 public:
  virtual ~SyncServer() = default;

  // Starts serving; registers itself as the store's change callback. `store` must outlive
  // the server. Fails (kUnavailable / kInvalidArgument) if the listener cannot be bound or
  // the TLS material cannot be read.
  static absl::StatusOr<std::unique_ptr<SyncServer>> start(ConfigStore& store,
                                                           const SyncServerOptions& options);

  // The bound port (useful with port 0).
  virtual int port() const = 0;
  // Ends every stream and stops the listener; idempotent. Called from main on SIGTERM.
  virtual void shutdown() = 0;
};

}  // namespace portico::cp
