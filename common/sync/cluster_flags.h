// The cluster-TLS flags both binaries take (--cluster_cert, --cluster_key, --cluster_ca,
// --cluster_mtls, --cluster_insecure), defined once here and read into one struct. In
// portico_server_flags, which the two planes' libraries link (porticoctl does not).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/sync/cluster_tls.h"

namespace portico::sync {

struct ClusterTlsFlags {
  bool insecure = false;
  std::string cert_path;
  std::string key_path;
  std::string ca_path;
  ClusterMtls mtls = ClusterMtls::kShared;
};

// The flags' values; kInvalidArgument (one line naming the flag) for a bad --cluster_mtls.
absl::StatusOr<ClusterTlsFlags> clusterTlsFromFlags();

}  // namespace portico::sync
