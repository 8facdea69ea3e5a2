// Cluster TLS helpers shared by the CP's SyncServer and the DP's SyncClient: reading PEM
// files, and what the two mTLS modes need from a certificate. `shared` (Kong's default): CP
// and DP hold the same self-signed certificate and each side pins it, i.e. checks that the
// peer presents exactly that certificate (SHA-256 of its DER). `pki`: certificates are
// verified against --cluster_ca, and a DP certificate may name the groups it may join as
// SAN URIs `portico://group/<name>`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace portico::sync {

enum class ClusterMtls { kShared, kPki };

inline constexpr char kGroupUriPrefix[] = "portico://group/";
// gRPC metadata carrying a DP's join token (pki mode).
inline constexpr char kJoinTokenMetadata[] = "portico-join-token";

// --cluster_mtls as both binaries take it: "shared" or "pki", and "" for the default (pki when
// a CA is given, else shared). kInvalidArgument with the one-line message otherwise.
absl::StatusOr<ClusterMtls> parseClusterMtls(std::string_view mode, bool have_ca);

// The whole file; kInvalidArgument naming `what` and the path (or that no path was given).
absl::StatusOr<std::string> readPemFile(const std::string& what, const std::string& path);

// Lower-case hex SHA-256 of the DER encoding of the first certificate in `pem`.
absl::StatusOr<std::string> certificateSha256(const std::string& pem);

// The groups named by `portico://group/<name>` SAN URIs of the first certificate in `pem`.
absl::StatusOr<std::vector<std::string>> certificateGroups(const std::string& pem);

// The name a client must expect for this certificate: its first DNS SAN, else its CN.
absl::StatusOr<std::string> certificateName(const std::string& pem);

}  // namespace portico::sync
