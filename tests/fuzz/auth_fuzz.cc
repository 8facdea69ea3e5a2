#include "tests/fuzz/auth_fuzz.h"

#include <cstdlib>
#include <string>
#include <string_view>

#include "data_plane/plugins/basic_auth/credentials.h"
#include "data_plane/plugins/hmac_auth/authorization.h"
#include "data_plane/plugins/jwt/token.h"

namespace portico::fuzz {
namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

int fuzzJwtToken(const uint8_t* data, size_t size) {
  using namespace dp::plugins::jwt;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  DecodedToken t;
  const DecodeError e = decodeToken(in, &t);
  if (e == DecodeError::kNone) {
    check(t.header.is_object() && t.claims.is_object());
    check(supportedAlg(t.alg));
    check(t.alg != "none");
    check(t.signing_input.size() < in.size());
    bool bad_key = false;
    // Any key material: never accepts, never crashes (an HMAC over random input is not a
    // signature the fuzzer can forge).
    (void)verifySignature(t, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                          &bad_key);
  }
  (void)base64UrlDecode(in);
  return 0;
}

int fuzzBasicAuth(const uint8_t* data, size_t size) {
  using namespace dp::plugins::basic_auth;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto c = parseBasicAuthorization(in);
  if (c) {
    check(!c->username.empty());
    check(c->username.find(':') == std::string::npos);
    check(c->username.size() + c->password.size() < in.size());
  }
  return 0;
}

int fuzzHmacAuthorization(const uint8_t* data, size_t size) {
  using namespace dp::plugins::hmac_auth;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto a = parseHmacAuthorization(in);
  if (a) {
    check(!a->username.empty() && !a->algorithm.empty() && !a->signature.empty());
    for (const std::string& h : a->headers) check(!h.empty() && h.find(' ') == std::string::npos);
  }
  (void)parseHttpDate(in);
  return 0;
}

}  // namespace portico::fuzz
