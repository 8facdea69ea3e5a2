// The cluster listener's TLS server context: certificate chain and key, the client
// certificate policy (a pinned shared certificate checked inside the handshake, or a CA
// chain), ALPN "h2", and OpenSSL error text for logs. Internal to wire/.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "control_plane/sync/wire/grpc_server.h"

namespace portico::cp::wire::internal {

// OpenSSL's error queue as one line ("unknown TLS error" when empty); clears it.
std::string sslErrors();
// Why an SSL_read/SSL_write failed: OpenSSL's error queue, or errno for a socket error.
std::string tlsFailure(int ssl_error);

struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// The server context for `o` (cert_pem, key_pem, client_cert, ca_pem, pinned digest). The
// verify callback keeps a pointer to o.pinned_client_cert_sha256: `o` must outlive it.
absl::StatusOr<SslCtxPtr> makeSslCtx(const ServerOptions& o);

}  // namespace portico::cp::wire::internal
