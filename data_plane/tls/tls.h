// TLS for the proxy engine (OpenSSL 3 through asio::ssl):
//  - CertificateTable: Kong's certificates + snis of one snapshot, compiled into one server
//    SSL_CTX per certificate and an SNI index (exact names, "*.x" and "x.*" wildcards, "*").
//    Built on the config thread with the snapshot; read by the handshake's servername callback.
//  - the listener's default context (a configured cert, or one self-signed at start like Kong);
//  - UpstreamTls: the client context of an https service (tls_verify, tls_verify_depth,
//    ca_certificates, client_certificate).
#pragma once

#include <utility>  // Boost 1.74 asio headers use std::exchange without it

#include <boost/asio/ssl/context.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "portico/config/v1/config.pb.h"

namespace portico::dp::tls {

using SslContextPtr = std::shared_ptr<boost::asio::ssl::context>;

// A TLS 1.2/1.3 server context holding `cert_pem` (leaf first, then chain) and `key_pem`, plus
// the alternate pair when given (Kong's cert_alt/key_alt, a different key type).
absl::StatusOr<SslContextPtr> makeServerContext(std::string_view cert_pem, std::string_view key_pem,
                                                std::string_view cert_alt_pem = {},
                                                std::string_view key_alt_pem = {});

// A self-signed certificate (EC P-256, 10 years) for `common_name`, as PEM cert and key. Kong
// generates one at start when no ssl_cert is configured.
absl::StatusOr<std::pair<std::string, std::string>> generateSelfSigned(std::string_view cn);

class CertificateTable {
 public:
  // Fails (kInvalidArgument naming the certificate) on a cert/key OpenSSL cannot load.
  static absl::StatusOr<std::unique_ptr<const CertificateTable>> build(
      const config::v1::Snapshot& config);
  // The context serving `sni` (trailing dot ignored), or nullptr (use the default certificate).
  // Exact names first, then the longest matching "*.x" / "x.*", then a "*" catch-all.
  SSL_CTX* find(std::string_view sni) const;
  size_t size() const { return contexts_.size(); }

 private:
  std::vector<SslContextPtr> contexts_;
  absl::flat_hash_map<std::string, SSL_CTX*> exact_;
  std::vector<std::pair<std::string, SSL_CTX*>> suffix_;  // ".x" for "*.x", longest first
  std::vector<std::pair<std::string, SSL_CTX*>> prefix_;  // "x." for "x.*", longest first
  SSL_CTX* catch_all_ = nullptr;
};

// How to talk TLS to one https service. `context` is shared by every connection to it.
struct UpstreamTls {
  SslContextPtr context;
  bool verify = false;      // tls_verify: peer chain and host name are checked
  std::string server_name;  // SNI and the name verified: the service host
};

// Builds the client context for `service` (protocol https/grpcs). CA certificates come from
// the snapshot's ca_certificates named by the service, else the system store.
absl::StatusOr<std::shared_ptr<const UpstreamTls>> makeUpstreamTls(
    const config::v1::Service& service, const config::v1::Snapshot& config);

}  // namespace portico::dp::tls
