#include "data_plane/tls/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace portico::dp::tls {
namespace {

namespace ssl = boost::asio::ssl;
using boost::system::error_code;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c + 32);
    }
  }
  return out;
}

absl::Status loadPair(ssl::context& ctx, std::string_view cert, std::string_view key) {
  error_code ec;
  ctx.use_certificate_chain(boost::asio::buffer(cert.data(), cert.size()), ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("invalid certificate: ", ec.message()));
  }
  ctx.use_private_key(boost::asio::buffer(key.data(), key.size()), ssl::context::pem, ec);
  if (ec) {
    if (ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH) {
      return absl::InvalidArgumentError("certificate does not match key");  // Kong's message
    }
    return absl::InvalidArgumentError(absl::StrCat("invalid key: ", ec.message()));
  }
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
    return absl::InvalidArgumentError("certificate does not match key");
  }
  return absl::OkStatus();
}

void baseOptions(ssl::context& ctx) {
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx.native_handle(), SSL_MODE_RELEASE_BUFFERS);
}

}  // namespace

absl::StatusOr<SslContextPtr> makeServerContext(std::string_view cert_pem, std::string_view key_pem,
                                                std::string_view cert_alt_pem,
                                                std::string_view key_alt_pem) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  baseOptions(*ctx);
  SSL_CTX_set_session_cache_mode(ctx->native_handle(), SSL_SESS_CACHE_SERVER);
  absl::Status st = loadPair(*ctx, cert_pem, key_pem);
  if (!st.ok()) {
    return st;
  }
  if (!cert_alt_pem.empty() && !key_alt_pem.empty()) {
    st = loadPair(*ctx, cert_alt_pem, key_alt_pem);
    if (!st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("cert_alt: ", st.message()));
    }
  }
  return ctx;
}

absl::StatusOr<std::pair<std::string, std::string>> generateSelfSigned(std::string_view cn) {
  EVP_PKEY* pkey = EVP_EC_gen("P-256");
  X509* x = X509_new();
  if (pkey == nullptr || x == nullptr) {
    EVP_PKEY_free(pkey);
    X509_free(x);
    return absl::InternalError("cannot generate the default certificate");
  }
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), static_cast<long>(time(nullptr)));
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
  X509_set_pubkey(x, pkey);
  X509_NAME* name = X509_get_subject_name(x);
  const std::string cn_str(cn);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn_str.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_sign(x, pkey, EVP_sha256());
  std::pair<std::string, std::string> out;
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  out.first.assign(data, static_cast<size_t>(n));
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  n = BIO_get_mem_data(b, &data);
  out.second.assign(data, static_cast<size_t>(n));
  BIO_free(b);
  X509_free(x);
  EVP_PKEY_free(pkey);
  return out;
}

absl::StatusOr<std::unique_ptr<const CertificateTable>> CertificateTable::build(
    const config::v1::Snapshot& config) {
  std::unique_ptr<CertificateTable> table(new CertificateTable());
  absl::flat_hash_map<std::string, SSL_CTX*> by_cert_id;
  for (const config::v1::Certificate& c : config.certificates()) {
    auto ctx = makeServerContext(c.cert(), c.key(), c.has_cert_alt() ? c.cert_alt() : "",
                                 c.has_key_alt() ? c.key_alt() : "");
    if (!ctx.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("certificate ", c.id(), ": ", ctx.status().message()));
    }
    by_cert_id[c.id()] = (*ctx)->native_handle();
    table->contexts_.push_back(*std::move(ctx));
  }
  for (const config::v1::Sni& sni : config.snis()) {
    auto it = by_cert_id.find(sni.certificate().id());
    if (it == by_cert_id.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sni ", sni.name(), ": certificate ", sni.certificate().id(), " not found"));
    }
    const std::string name = lower(sni.name());
    if (name == "*") {
      table->catch_all_ = it->second;
    } else if (name.size() > 2 && name.compare(0, 2, "*.") == 0) {
      table->suffix_.emplace_back(name.substr(1), it->second);
    } else if (name.size() > 2 && name.compare(name.size() - 2, 2, ".*") == 0) {
      table->prefix_.emplace_back(name.substr(0, name.size() - 1), it->second);
    } else {
      table->exact_[name] = it->second;
    }
  }
  auto longest = [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); };
  std::stable_sort(table->suffix_.begin(), table->suffix_.end(), longest);
  std::stable_sort(table->prefix_.begin(), table->prefix_.end(), longest);
  return std::unique_ptr<const CertificateTable>(std::move(table));
}

SSL_CTX* CertificateTable::find(std::string_view sni) const {
  if (!sni.empty() && sni.back() == '.') {
    sni.remove_suffix(1);
  }
  std::string name = lower(sni);
  if (auto it = exact_.find(name); it != exact_.end()) {
    return it->second;
  }
  for (const auto& [suffix, ctx] : suffix_) {
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return ctx;
    }
  }
  for (const auto& [prefix, ctx] : prefix_) {
    if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0) {
      return ctx;
    }
  }
  return catch_all_;
}

absl::StatusOr<std::shared_ptr<const UpstreamTls>> makeUpstreamTls(
    const config::v1::Service& service, const config::v1::Snapshot& config) {
  auto out = std::make_shared<UpstreamTls>();
  out->context = std::make_shared<ssl::context>(ssl::context::tls_client);
  ssl::context& ctx = *out->context;
  baseOptions(ctx);
  out->server_name = service.host();
  out->verify = service.has_tls_verify() && service.tls_verify();
  if (out->verify) {
    error_code ec;
    if (service.ca_certificates_size() == 0) {
      ctx.set_default_verify_paths(ec);
    }
    for (const std::string& id : service.ca_certificates()) {
      const config::v1::CaCertificate* found = nullptr;
      for (const config::v1::CaCertificate& ca : config.ca_certificates()) {
        if (ca.id() == id) {
          found = &ca;
          break;
        }
      }
      if (found == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("service ", service.id(), ": ca_certificate ", id, " not found"));
      }
      ctx.add_certificate_authority(boost::asio::buffer(found->cert()), ec);
      if (ec) {
        return absl::InvalidArgumentError(absl::StrCat("service ", service.id(),
                                                       ": ca_certificate ", id, ": ",
                                                       ec.message()));
      }
    }
    ctx.set_verify_mode(ssl::verify_peer);
    if (service.has_tls_verify_depth()) {
      SSL_CTX_set_verify_depth(ctx.native_handle(), service.tls_verify_depth());
    }
  } else {
    ctx.set_verify_mode(ssl::verify_none);
  }
  if (service.has_client_certificate()) {
    const config::v1::Certificate* found = nullptr;
    for (const config::v1::Certificate& c : config.certificates()) {
      if (c.id() == service.client_certificate()) {
        found = &c;
        break;
      }
    }
    if (found == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "service ", service.id(), ": client_certificate ", service.client_certificate(),
          " not found"));
    }
    absl::Status st = loadPair(ctx, found->cert(), found->key());
    if (!st.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("service ", service.id(), ": client_certificate: ", st.message()));
    }
  }
  SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_CLIENT);
  return std::shared_ptr<const UpstreamTls>(std::move(out));
}

}  // namespace portico::dp::tls
