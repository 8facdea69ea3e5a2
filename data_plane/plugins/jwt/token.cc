#include "data_plane/plugins/jwt/token.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>

#include "common/config/json_limits.h"
#include "data_plane/plugins/request_util.h"

namespace portico::dp::plugins::jwt {
namespace {

const EVP_MD* digestFor(std::string_view alg) {
  if (alg.size() < 5) return nullptr;
  std::string_view bits = alg.substr(2);
  if (bits == "256") return EVP_sha256();
  if (bits == "384") return EVP_sha384();
  if (bits == "512") return EVP_sha512();
  return nullptr;
}

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

PkeyPtr parsePublicKey(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  PkeyPtr key(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr,
              EVP_PKEY_free);
  ERR_clear_error();
  return key;
}

// JWS ES* signatures are r || s of fixed width; OpenSSL verifies DER.
std::optional<std::string> ecdsaToDer(const std::string& raw, size_t half) {
  if (raw.size() != 2 * half) return std::nullopt;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()),
                        static_cast<int>(half), nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + half,
                        static_cast<int>(half), nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (len <= 0) return std::nullopt;
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

}  // namespace

std::optional<std::string> base64UrlDecode(std::string_view in) {
  return decodeBase64(in, /*url_safe=*/true);  // Kong's decoder takes either alphabet
}

bool supportedAlg(std::string_view alg) {
  for (std::string_view a : {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256",
                             "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}) {
    if (alg == a) return true;
  }
  return false;
}

DecodeError decodeToken(std::string_view token, DecodedToken* out) {
  if (token.size() > kMaxTokenBytes) return DecodeError::kInvalidJson;
  const size_t d1 = token.find('.');
  if (d1 == std::string_view::npos) return DecodeError::kInvalidJson;
  const size_t d2 = token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos) {
    return DecodeError::kInvalidJson;
  }
  std::optional<std::string> header = base64UrlDecode(token.substr(0, d1));
  std::optional<std::string> claims = base64UrlDecode(token.substr(d1 + 1, d2 - d1 - 1));
  std::optional<std::string> sig = base64UrlDecode(token.substr(d2 + 1));
  if (!header || !claims || !sig) return DecodeError::kInvalidJson;
  std::optional<nlohmann::json> h = config::parseUntrustedJson(*header);
  std::optional<nlohmann::json> c = config::parseUntrustedJson(*claims);
  if (!h || !c || !h->is_object() || !c->is_object()) return DecodeError::kInvalidJson;
  out->header = std::move(*h);
  out->claims = std::move(*c);
  out->signing_input.assign(token.substr(0, d2));
  out->signature = std::move(*sig);
  auto alg = out->header.find("alg");
  if (alg == out->header.end() || !alg->is_string() ||
      !supportedAlg(alg->get<std::string>())) {
    return DecodeError::kInvalidAlg;  // "none" included
  }
  out->alg = alg->get<std::string>();
  return DecodeError::kNone;
}

bool verifySignature(const DecodedToken& token, const std::string& secret_or_pem,
                     bool* bad_key) {
  *bad_key = false;
  const std::string& alg = token.alg;
  const auto* data = reinterpret_cast<const unsigned char*>(token.signing_input.data());
  if (alg[0] == 'H') {
    const EVP_MD* md = digestFor(alg);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (md == nullptr || HMAC(md, secret_or_pem.data(), static_cast<int>(secret_or_pem.size()),
                              data, token.signing_input.size(), mac, &len) == nullptr) {
      *bad_key = true;
      return false;
    }
    return len == token.signature.size() &&
           CRYPTO_memcmp(mac, token.signature.data(), len) == 0;
  }
  PkeyPtr key = parsePublicKey(secret_or_pem);
  if (key == nullptr) {
    *bad_key = true;
    return false;
  }
  const EVP_MD* md = alg == "EdDSA" ? nullptr : digestFor(alg);
  std::string sig = token.signature;
  if (alg[0] == 'E' && alg != "EdDSA") {
    const size_t half = alg == "ES256" ? 32 : alg == "ES384" ? 48 : 66;
    std::optional<std::string> der = ecdsaToDer(token.signature, half);
    if (!der) return false;
    sig = std::move(*der);
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key.get()) != 1) {
    ERR_clear_error();
    *bad_key = true;
    return false;
  }
  if (alg[0] == 'P') {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1) {
      ERR_clear_error();
      *bad_key = true;
      return false;
    }
  }
  const int ok = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                                  sig.size(), data, token.signing_input.size());
  ERR_clear_error();
  return ok == 1;
}

}  // namespace portico::dp::plugins::jwt
