#include "control_plane/sync/wire/tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>

namespace portico::cp::wire::internal {

std::string sslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
  }
  return out.empty() ? "unknown TLS error" : out;
}

// Why an SSL_read/SSL_write failed: OpenSSL's error queue, or errno for a socket error (a DP
// that went away shows as EPIPE/ECONNRESET with an empty queue).
std::string tlsFailure(int ssl_error) {
  const int saved_errno = errno;
  if (ssl_error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
    return saved_errno != 0 ? std::strerror(saved_errno) : "connection closed by the peer";
  }
  return sslErrors();
}

absl::StatusOr<SslCtxPtr> makeSslCtx(const ServerOptions& o) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (ctx == nullptr) {
    return absl::InternalError("SSL_CTX_new: " + sslErrors());
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                                     SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  // RELEASE_BUFFERS: an idle connection gives its TLS record buffers back (~34 KB each).
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Certificate chain and key.
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(o.cert_pem.data(), static_cast<int>(o.cert_pem.size())), &BIO_free);
  X509* leaf = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (leaf == nullptr || SSL_CTX_use_certificate(ctx.get(), leaf) != 1) {
    X509_free(leaf);
    return absl::InvalidArgumentError("cluster certificate: " + sslErrors());
  }
  X509_free(leaf);
  while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add_extra_chain_cert(ctx.get(), extra) != 1) {  // takes ownership on success
      X509_free(extra);
      return absl::InvalidArgumentError("cluster certificate chain: " + sslErrors());
    }
  }
  ERR_clear_error();  // the loop above ends on a "no start line" error
  std::unique_ptr<BIO, decltype(&BIO_free)> kbio(
      BIO_new_mem_buf(o.key_pem.data(), static_cast<int>(o.key_pem.size())), &BIO_free);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr || SSL_CTX_use_PrivateKey(ctx.get(), key) != 1) {
    EVP_PKEY_free(key);
    return absl::InvalidArgumentError("cluster key: " + sslErrors());
  }
  EVP_PKEY_free(key);
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return absl::InvalidArgumentError("cluster key does not match the certificate: " +
                                      sslErrors());
  }
  switch (o.client_cert) {
    case ClientCertMode::kNone:
      break;
    case ClientCertMode::kRequireAny:
      // No chain to verify (shared mode: the certificate is self-signed); TLS still proves
      // the client holds the key of what it presents (CertificateVerify). With a pin, what it
      // presents must be that certificate, decided here, in the handshake.
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
      SSL_CTX_set_cert_verify_callback(
          ctx.get(),
          [](X509_STORE_CTX* store, void* arg) -> int {
            const std::string& pin = *static_cast<const std::string*>(arg);
            if (pin.empty()) {
              return 1;
            }
            X509* leaf = X509_STORE_CTX_get0_cert(store);
            unsigned char digest[EVP_MAX_MD_SIZE];
            unsigned int len = 0;
            if (leaf == nullptr || X509_digest(leaf, EVP_sha256(), digest, &len) != 1) {
              return 0;
            }
            static constexpr char kHex[] = "0123456789abcdef";
            std::string hex;
            for (unsigned int i = 0; i < len; ++i) {
              hex.push_back(kHex[digest[i] >> 4]);
              hex.push_back(kHex[digest[i] & 0xf]);
            }
            const bool same =
                hex.size() == pin.size() && CRYPTO_memcmp(hex.data(), pin.data(), pin.size()) == 0;
            if (!same) {
              X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
            }
            return same ? 1 : 0;
          },
          const_cast<std::string*>(&o.pinned_client_cert_sha256));
      break;
    case ClientCertMode::kRequireVerified: {
      X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
      std::unique_ptr<BIO, decltype(&BIO_free)> cbio(
          BIO_new_mem_buf(o.ca_pem.data(), static_cast<int>(o.ca_pem.size())), &BIO_free);
      int added = 0;
      while (X509* ca = PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr)) {
        X509_STORE_add_cert(store, ca);
        X509_free(ca);
        ++added;
      }
      ERR_clear_error();
      if (added == 0) {
        return absl::InvalidArgumentError("cluster CA: no certificate found");
      }
      // Optional: a client without a certificate gets through the handshake, and the call
      // must then carry something else that admits it (an issued join token).
      SSL_CTX_set_verify(ctx.get(),
                         o.client_cert_optional
                             ? SSL_VERIFY_PEER
                             : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                         nullptr);
      break;
    }
  }
  // gRPC clients require ALPN "h2".
  SSL_CTX_set_alpn_select_cb(
      ctx.get(),
      [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
         unsigned int inlen, void*) -> int {
        static const unsigned char kH2[] = {2, 'h', '2'};
        unsigned char* selected = nullptr;
        if (SSL_select_next_proto(&selected, outlen, kH2, sizeof(kH2), in, inlen) !=
            OPENSSL_NPN_NEGOTIATED) {
          return SSL_TLSEXT_ERR_ALERT_FATAL;
        }
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
      },
      nullptr);
  return ctx;
}

}  // namespace portico::cp::wire::internal
