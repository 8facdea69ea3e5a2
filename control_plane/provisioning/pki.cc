#include "control_plane/provisioning/pki.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"

namespace portico::cp::pki {
namespace {

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME, X509_NAME_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using Asn1IntegerPtr = std::unique_ptr<ASN1_INTEGER, Deleter<ASN1_INTEGER, ASN1_INTEGER_free>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;

// Certificates start this long before they are made, so a peer whose clock is a little behind
// the CP's does not see a not-yet-valid certificate (Let's Encrypt backdates the same way).
constexpr int64_t kBackdateSeconds = 3600;
constexpr int kMaxCaDays = 36500;
constexpr size_t kMaxCommonName = 64;  // ub-common-name, RFC 5280
constexpr size_t kMaxDnsName = 253;
constexpr size_t kMaxUri = 2048;
constexpr size_t kSerialBytes = 16;

std::string toHex(const unsigned char* bytes, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 0xf]);
  }
  return out;
}

// A failure inside libcrypto that bad input cannot cause (out of memory, missing algorithm).
// Clears the thread's OpenSSL error queue, so a later TLS call on this thread (gRPC) does not
// pick up our stale error.
absl::Status opensslError(const std::string& what) {
  const unsigned long code = ERR_peek_last_error();
  char text[256] = "unknown error";
  if (code != 0) {
    ERR_error_string_n(code, text, sizeof(text));
  }
  ERR_clear_error();
  return absl::InternalError(absl::StrCat(what, ": ", text));
}

absl::Status invalid(std::string message) {
  ERR_clear_error();
  return absl::InvalidArgumentError(std::move(message));
}

// Never prompt: without this callback OpenSSL would read a passphrase for an encrypted key
// from the controlling terminal, blocking the CP.
int noPassphrase(char*, int, int, void*) { return 0; }

absl::StatusOr<std::string> toPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return opensslError("cannot encode certificate");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<std::string> toPem(EVP_PKEY* key) {
  // Secure-heap memory BIO: its buffer is wiped when freed.
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return opensslError("cannot encode private key");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<PkeyPtr> newP256Key() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) {
    return opensslError("cannot generate EC P-256 key");
  }
  return key;
}

absl::StatusOr<int64_t> unixSeconds(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    return invalid("CA certificate has an unreadable validity period");
  }
  return static_cast<int64_t>(timegm(&tm));
}

// Adds an extension given in OpenSSL's config syntax. Only ever called with constant values:
// user input (names) never goes through this parser, whose commas and prefixes it could abuse.
absl::Status addExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (ext == nullptr) {
    if (nid == NID_authority_key_identifier) {
      return invalid("CA certificate has no subjectKeyIdentifier");
    }
    return opensslError(absl::StrCat("cannot build extension ", OBJ_nid2sn(nid)));
  }
  if (X509_add_ext(cert, ext.get(), -1) != 1) {
    return opensslError("cannot add extension");
  }
  return absl::OkStatus();
}

// Version 3, a random positive serial of exactly 16 bytes, subject, issuer, validity and
// public key. `serial_hex` receives the serial as lower-case hex.
absl::StatusOr<X509Ptr> newCertificate(const X509_NAME* subject, const X509_NAME* issuer,
                                       int64_t not_before, int64_t not_after, EVP_PKEY* key,
                                       std::string* serial_hex) {
  unsigned char serial[kSerialBytes];
  randomBytes(serial, sizeof(serial));
  // Top bit clear keeps the DER INTEGER positive without a 0x00 pad; the next bit set keeps it
  // exactly 16 bytes, so the hex is always 32 characters (126 random bits remain, well above
  // the CA/Browser Forum's 64).
  serial[0] = static_cast<unsigned char>((serial[0] & 0x7f) | 0x40);
  *serial_hex = toHex(serial, sizeof(serial));

  X509Ptr cert(X509_new());
  BnPtr bn(BN_bin2bn(serial, sizeof(serial), nullptr));
  Asn1IntegerPtr asn1_serial(bn == nullptr ? nullptr : BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (cert == nullptr || asn1_serial == nullptr ||
      X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_serialNumber(cert.get(), asn1_serial.get()) != 1 ||
      X509_set_subject_name(cert.get(), subject) != 1 ||
      X509_set_issuer_name(cert.get(), issuer) != 1 ||
      ASN1_TIME_set(X509_getm_notBefore(cert.get()), static_cast<time_t>(not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(not_after)) == nullptr ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return opensslError("cannot build certificate");
  }
  return cert;
}

absl::Status sign(X509* cert, EVP_PKEY* key) {
  // EdDSA keys sign the message itself and take no separate digest.
  const int type = EVP_PKEY_get_id(key);
  const EVP_MD* md = type == EVP_PKEY_ED25519 || type == EVP_PKEY_ED448 ? nullptr : EVP_sha256();
  if (X509_sign(cert, key, md) <= 0) {
    return opensslError("cannot sign certificate");
  }
  return absl::OkStatus();
}

bool isDnsName(const std::string& name) {
  if (name.empty() || name.size() > kMaxDnsName) {
    return false;
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '*';
    if (!ok) {
      return false;
    }
  }
  return true;
}

bool isUri(const std::string& uri) {
  if (uri.empty() || uri.size() > kMaxUri) {
    return false;
  }
  for (char c : uri) {
    if (c <= ' ' || c > '~') {  // IA5 and no spaces or controls
      return false;
    }
  }
  const size_t colon = uri.find(':');
  return colon != std::string::npos && colon > 0;
}

bool isCommonName(const std::string& cn) {
  if (cn.size() > kMaxCommonName) {
    return false;
  }
  for (char c : cn) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return false;
    }
  }
  return true;
}

absl::Status pushName(GENERAL_NAMES* names, int type, const std::string& value) {
  GENERAL_NAME* name = GENERAL_NAME_new();
  ASN1_STRING* s = type == GEN_IPADD ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
  if (name == nullptr || s == nullptr ||
      ASN1_STRING_set(s, value.data(), static_cast<int>(value.size())) != 1) {
    GENERAL_NAME_free(name);
    ASN1_STRING_free(s);
    return opensslError("cannot build subjectAltName");
  }
  GENERAL_NAME_set0_value(name, type, s);
  if (sk_GENERAL_NAME_push(names, name) <= 0) {
    GENERAL_NAME_free(name);
    return opensslError("cannot build subjectAltName");
  }
  return absl::OkStatus();
}

// The request's SANs, validated. Built as ASN.1 directly rather than through OpenSSL's config
// syntax, in which a name containing "," could smuggle in another entry.
absl::StatusOr<GeneralNamesPtr> subjectAltNames(const IssueRequest& request) {
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  if (names == nullptr) {
    return opensslError("cannot build subjectAltName");
  }
  for (size_t i = 0; i < request.dns_names.size(); ++i) {
    const std::string& dns = request.dns_names[i];
    if (!isDnsName(dns)) {
      return invalid(
          absl::StrCat("dns_names[", i, "]: '", absl::CHexEscape(dns), "' is not a DNS name"));
    }
    RETURN_IF_ERROR(pushName(names.get(), GEN_DNS, dns));
  }
  for (size_t i = 0; i < request.ip_addresses.size(); ++i) {
    const std::string& ip = request.ip_addresses[i];
    // inet_pton, not OpenSSL's a2i_IPADDRESS, which accepts trailing junk after an IPv4 address.
    unsigned char bytes[16];
    int size = 0;
    if (inet_pton(AF_INET, ip.c_str(), bytes) == 1) {
      size = 4;
    } else if (inet_pton(AF_INET6, ip.c_str(), bytes) == 1) {
      size = 16;
    } else {
      return invalid(absl::StrCat("ip_addresses[", i, "]: '", absl::CHexEscape(ip),
                                  "' is not an IPv4 or IPv6 address"));
    }
    RETURN_IF_ERROR(
        pushName(names.get(), GEN_IPADD, std::string(reinterpret_cast<char*>(bytes), size)));
  }
  for (size_t i = 0; i < request.uris.size(); ++i) {
    const std::string& uri = request.uris[i];
    if (!isUri(uri)) {
      return invalid(absl::StrCat("uris[", i, "]: '", absl::CHexEscape(uri), "' is not a URI"));
    }
    RETURN_IF_ERROR(pushName(names.get(), GEN_URI, uri));
  }
  return names;
}

absl::StatusOr<NamePtr> commonNameSubject(const std::string& common_name) {
  NamePtr name(X509_NAME_new());
  if (name == nullptr) {
    return opensslError("cannot build subject");
  }
  if (!common_name.empty() &&
      X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.data()),
                                 static_cast<int>(common_name.size()), -1, 0) != 1) {
    return invalid(
        absl::StrCat("common_name: '", absl::CHexEscape(common_name), "' is not valid UTF-8"));
  }
  return name;
}

struct ParsedCa {
  X509Ptr cert;
  PkeyPtr key;
};

absl::StatusOr<ParsedCa> parseCa(const KeyPair& ca) {
  ParsedCa out;
  BioPtr cert_bio(BIO_new_mem_buf(ca.cert_pem.data(), static_cast<int>(ca.cert_pem.size())));
  BioPtr key_bio(BIO_new_mem_buf(ca.key_pem.data(), static_cast<int>(ca.key_pem.size())));
  if (cert_bio == nullptr || key_bio == nullptr) {
    return opensslError("cannot read CA");
  }
  out.cert.reset(PEM_read_bio_X509(cert_bio.get(), nullptr, noPassphrase, nullptr));
  if (out.cert == nullptr) {
    return invalid("CA certificate is not a PEM certificate");
  }
  out.key.reset(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, noPassphrase, nullptr));
  if (out.key == nullptr) {
    return invalid("CA key is not an unencrypted PEM private key");
  }
  if (X509_check_private_key(out.cert.get(), out.key.get()) != 1) {
    return invalid("CA key does not match the CA certificate");
  }
  // Also refuses a CA whose keyUsage lacks keyCertSign: verifiers would reject what it signs.
  if (X509_check_ca(out.cert.get()) == 0) {
    return invalid("CA certificate is not a CA (basicConstraints CA:TRUE, keyCertSign)");
  }
  return out;
}

}  // namespace

void randomBytes(unsigned char* out, size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) {
    std::fputs("portico: RAND_bytes failed\n", stderr);
    std::abort();
  }
}

absl::StatusOr<KeyPair> createCa(const std::string& common_name, int days) {
  if (common_name.empty() || !isCommonName(common_name)) {
    return invalid("common_name: must be 1 to 64 characters, without control characters");
  }
  if (days < 1 || days > kMaxCaDays) {
    return invalid(absl::StrCat("days: must be 1 to ", kMaxCaDays));
  }
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  ASSIGN_OR_RETURN(const PkeyPtr key, newP256Key());
  ASSIGN_OR_RETURN(const NamePtr name, commonNameSubject(common_name));
  std::string serial;
  ASSIGN_OR_RETURN(const X509Ptr cert,
                   newCertificate(name.get(), name.get(), now - kBackdateSeconds,
                                  now + int64_t{days} * 86400, key.get(), &serial));
  X509* x = cert.get();
  RETURN_IF_ERROR(addExtension(x, x, NID_basic_constraints, "critical,CA:TRUE"));
  RETURN_IF_ERROR(addExtension(x, x, NID_key_usage, "critical,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(addExtension(x, x, NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(sign(x, key.get()));
  KeyPair out;
  ASSIGN_OR_RETURN(out.cert_pem, toPem(x));
  ASSIGN_OR_RETURN(out.key_pem, toPem(key.get()));
  return out;
}

absl::StatusOr<Issued> issue(const KeyPair& ca, const IssueRequest& request) {
  ASSIGN_OR_RETURN(const ParsedCa parsed, parseCa(ca));
  X509* ca_cert = parsed.cert.get();

  if (request.common_name.empty() && request.dns_names.empty() && request.ip_addresses.empty() &&
      request.uris.empty()) {
    return invalid(
        "the certificate must name something (common_name, dns_names, "
        "ip_addresses or uris)");
  }
  if (!isCommonName(request.common_name)) {
    return invalid("common_name: must be at most 64 characters, without control characters");
  }
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  if (request.not_after_unix <= now) {
    return invalid(absl::StrCat("not_after: ", request.not_after_unix, " is not in the future"));
  }
  ASSIGN_OR_RETURN(const int64_t ca_not_before, unixSeconds(X509_get0_notBefore(ca_cert)));
  ASSIGN_OR_RETURN(const int64_t ca_not_after, unixSeconds(X509_get0_notAfter(ca_cert)));
  // A certificate outliving its CA would fail verification once the CA expires; say so now
  // rather than hand out something that silently stops working early.
  if (request.not_after_unix > ca_not_after) {
    return invalid(absl::StrCat("not_after: ", request.not_after_unix, " is after the CA's expiry ",
                                ca_not_after));
  }
  const int64_t not_before = std::max(now - kBackdateSeconds, ca_not_before);

  ASSIGN_OR_RETURN(const GeneralNamesPtr sans, subjectAltNames(request));
  ASSIGN_OR_RETURN(const NamePtr subject, commonNameSubject(request.common_name));
  ASSIGN_OR_RETURN(const PkeyPtr key, newP256Key());
  Issued out;
  ASSIGN_OR_RETURN(const X509Ptr cert,
                   newCertificate(subject.get(), X509_get_subject_name(ca_cert), not_before,
                                  request.not_after_unix, key.get(), &out.serial));
  X509* x = cert.get();
  if (sk_GENERAL_NAME_num(sans.get()) > 0) {
    // RFC 5280 4.2.1.6: with an empty subject the SAN extension must be critical.
    const int critical = request.common_name.empty() ? 1 : 0;
    if (X509_add1_ext_i2d(x, NID_subject_alt_name, sans.get(), critical, X509V3_ADD_DEFAULT) != 1) {
      return opensslError("cannot add subjectAltName");
    }
  }
  RETURN_IF_ERROR(addExtension(x, ca_cert, NID_basic_constraints, "critical,CA:FALSE"));
  // digitalSignature alone: with an EC key, TLS (ECDHE) only ever signs; keyEncipherment is an
  // RSA key-transport usage.
  RETURN_IF_ERROR(addExtension(x, ca_cert, NID_key_usage, "critical,digitalSignature"));
  RETURN_IF_ERROR(
      addExtension(x, ca_cert, NID_ext_key_usage, request.server ? "serverAuth" : "clientAuth"));
  RETURN_IF_ERROR(addExtension(x, ca_cert, NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(addExtension(x, ca_cert, NID_authority_key_identifier, "keyid:always"));
  RETURN_IF_ERROR(sign(x, parsed.key.get()));

  unsigned char* der = nullptr;
  const int der_len = i2d_X509(x, &der);
  if (der_len <= 0) {
    return opensslError("cannot encode certificate");
  }
  out.sha256 = sha256Hex(std::string_view(reinterpret_cast<char*>(der), der_len));
  OPENSSL_free(der);
  ASSIGN_OR_RETURN(out.cert_pem, toPem(x));
  ASSIGN_OR_RETURN(out.key_pem, toPem(key.get()));
  out.not_before_unix = not_before;
  out.not_after_unix = request.not_after_unix;
  return out;
}

std::string randomToken() {
  unsigned char bytes[32];
  randomBytes(bytes, sizeof(bytes));
  std::string token = absl::StrCat("ptk_", absl::WebSafeBase64Escape(absl::string_view(
                                               reinterpret_cast<char*>(bytes), sizeof(bytes))));
  OPENSSL_cleanse(bytes, sizeof(bytes));
  return token;
}

std::string sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    std::fputs("portico: SHA-256 failed\n", stderr);  // broken libcrypto; nothing to recover
    std::abort();
  }
  return toHex(digest, len);
}

}  // namespace portico::cp::pki
