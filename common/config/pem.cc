#include "common/config/pem.h"

#include <openssl/err.h>
#include <openssl/pem.h>

namespace portico::config {

namespace {

std::string opensslError() {
  const unsigned long code = ERR_peek_last_error();
  char buf[256] = {0};
  ERR_error_string_n(code, buf, sizeof(buf));
  ERR_clear_error();
  return code == 0 ? "unknown error" : buf;
}

}  // namespace

X509Ptr parseCert(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                               BIO_free);
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
}

PkeyPtr parseKey(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                               BIO_free);
  return PkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
}

std::string certificateCheck(Json& v) {
  ERR_clear_error();
  if (parseCert(v.get<std::string>()) == nullptr) {
    return "invalid certificate: " + opensslError();
  }
  return "";
}

std::string keyCheck(Json& v) {
  ERR_clear_error();
  if (parseKey(v.get<std::string>()) == nullptr) {
    return "invalid key: " + opensslError();
  }
  return "";
}

std::string certKeyMatch(const Json& e, const char* cert_field, const char* key_field,
                         const char* message) {
  if (!e[cert_field].is_string() || !e[key_field].is_string()) {
    return "";
  }
  X509Ptr cert = parseCert(e[cert_field].get<std::string>());
  PkeyPtr key = parseKey(e[key_field].get<std::string>());
  if (cert == nullptr || key == nullptr) {
    return "";
  }
  const int ok = X509_check_private_key(cert.get(), key.get());
  ERR_clear_error();
  return ok == 1 ? "" : message;
}

std::string sha256Hex(const std::string& pem) {
  X509Ptr cert = parseCert(pem);
  if (cert == nullptr) {
    return "";
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(cert.get(), EVP_sha256(), md, &len);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

}  // namespace portico::config
