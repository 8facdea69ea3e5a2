// PEM parsing for the certificate entities' rules (certificates, ca_certificates, jwt_secrets'
// public keys): OpenSSL objects with their deleters and Kong's "invalid certificate: ..."
// messages.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "common/config/schema.h"

namespace portico::config {

using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

X509Ptr parseCert(const std::string& pem);  // nullptr when not a PEM certificate
PkeyPtr parseKey(const std::string& pem);   // nullptr when not a PEM private key
// Field validators: "invalid certificate: <OpenSSL reason>", "invalid key: ...".
std::string certificateCheck(Json& v);
std::string keyCheck(Json& v);
// `message` when the entity's `cert_field` and `key_field` are both valid and do not match.
std::string certKeyMatch(const Json& e, const char* cert_field, const char* key_field,
                         const char* message);
// Lower-case hex SHA-256 of the certificate's DER ("" when not a certificate).
std::string sha256Hex(const std::string& pem);

}  // namespace portico::config
