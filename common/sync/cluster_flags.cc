#include "common/sync/cluster_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(bool, cluster_insecure, false,
          "The cluster link (CP :8005 <-> DPs) in plain text, without mTLS: on both sides, for "
          "a laptop or tests only.");
ABSL_FLAG(std::string, cluster_cert, "",
          "Cluster certificate (PEM): the CP's listener certificate, a DP's client certificate "
          "(shared mode: the same file on both sides).");
ABSL_FLAG(std::string, cluster_key, "", "The private key of --cluster_cert (PEM).");
ABSL_FLAG(std::string, cluster_ca, "",
          "pki: the CA (PEM) that signs the other side's certificate: the DPs' on the CP, the "
          "CP's on a DP.");
ABSL_FLAG(std::string, cluster_mtls, "",
          "shared: the other side presents this very --cluster_cert (pinned); pki: its "
          "certificate is verified against --cluster_ca (default: pki if --cluster_ca is set, "
          "else shared).");

namespace portico::sync {

absl::StatusOr<ClusterTlsFlags> clusterTlsFromFlags() {
  ClusterTlsFlags f;
  f.insecure = absl::GetFlag(FLAGS_cluster_insecure);
  f.cert_path = absl::GetFlag(FLAGS_cluster_cert);
  f.key_path = absl::GetFlag(FLAGS_cluster_key);
  f.ca_path = absl::GetFlag(FLAGS_cluster_ca);
  absl::StatusOr<ClusterMtls> mtls =
      parseClusterMtls(absl::GetFlag(FLAGS_cluster_mtls), !f.ca_path.empty());
  if (!mtls.ok()) {
    return mtls.status();
  }
  f.mtls = *mtls;
  return f;
}

}  // namespace portico::sync
