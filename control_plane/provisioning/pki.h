// The control plane's certificate authority for cluster mTLS (--cluster_mtls=pki): creating a
// self-signed cluster CA and issuing data plane (client) and control plane (server)
// certificates from it, plus the random join tokens a DP presents to get its first certificate.
// Pure functions over PEM text: storage and sealing the CA key (keyring.h) are the caller's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace portico::cp::pki {

struct KeyPair {
  std::string cert_pem;
  std::string key_pem;  // PKCS#8, unencrypted: seal it (Keyring::seal) before storing
};

// A self-signed CA: EC P-256, CN `common_name`, basicConstraints CA:TRUE (critical), keyUsage
// keyCertSign + cRLSign (critical), subjectKeyIdentifier; valid from now - 1 h (clock skew
// between CP and DPs) for `days` days. kInvalidArgument for an empty or over-long (> 64) name
// or `days` outside 1..36500.
absl::StatusOr<KeyPair> createCa(const std::string& common_name, int days);

struct IssueRequest {
  std::string common_name;                // may be empty if there is a SAN
  std::vector<std::string> dns_names;     // SAN DNS
  std::vector<std::string> ip_addresses;  // SAN IP (v4 or v6 text); kInvalidArgument if unparsable
  std::vector<std::string> uris;          // SAN URI, e.g. "portico://group/team-a"
  bool server = false;                    // extendedKeyUsage serverAuth (else clientAuth)
  int64_t not_after_unix = 0;             // expiry (unix seconds, > now)
};

struct Issued {
  std::string cert_pem;
  std::string key_pem;  // fresh EC P-256 key, PKCS#8, unencrypted
  std::string sha256;   // lower-case hex SHA-256 of the certificate's DER
  std::string serial;   // lower-case hex, 16 random bytes (positive), always 32 characters
  int64_t not_before_unix = 0;
  int64_t not_after_unix = 0;
};

// Signs a certificate for a fresh key with `ca` (its certificate and key PEM): basicConstraints
// CA:FALSE, keyUsage digitalSignature (critical), extendedKeyUsage serverAuth or clientAuth per
// `server`, subject and authority key identifiers. Valid from now - 1 h (but not before the
// CA) to `request.not_after_unix`. kInvalidArgument for a bad CA (unparsable, key does not
// match, not a CA) or a bad request: no names at all, a malformed name or address, an expiry
// in the past or after the CA's. CPU only (~1 ms), thread-safe.
absl::StatusOr<Issued> issue(const KeyPair& ca, const IssueRequest& request);

// Fills `out` with `n` bytes from OpenSSL's CSPRNG; aborts the process when it has no
// entropy (a guessable serial, token, key or repeated GCM nonce would be worse than stopping).
void randomBytes(unsigned char* out, size_t n);

// A random URL-safe token: "ptk_" + 32 random bytes, base64url without padding (47 chars).
std::string randomToken();

// Lower-case hex SHA-256 of `data` (tokens are stored as their hash, never as text).
std::string sha256Hex(std::string_view data);

}  // namespace portico::cp::pki
