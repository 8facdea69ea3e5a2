// jwt: schema, token decoding, and every verification step through the real proxy with
// tokens signed here (HS256, RS256, ES256, PS256).
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <ctime>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "data_plane/plugins/jwt/token.h"
#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::PluginFixture;
using testing::WireResponse;

std::string b64url(const std::string& in) {
  std::string s = testing::base64(in);
  for (char& c : s) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  while (!s.empty() && s.back() == '=') s.pop_back();
  return s;
}

struct Key {
  EVP_PKEY* pkey = nullptr;
  explicit Key(const char* type) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
    REQUIRE(ctx != nullptr);
    REQUIRE(EVP_PKEY_keygen_init(ctx) == 1);
    if (std::string(type) == "RSA") EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048);
    if (std::string(type) == "EC") EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1);
    REQUIRE(EVP_PKEY_keygen(ctx, &pkey) == 1);
    EVP_PKEY_CTX_free(ctx);
  }
  ~Key() { EVP_PKEY_free(pkey); }
  std::string publicPem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, pkey);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(bio);
    return out;
  }
  std::string sign(const std::string& alg, const std::string& input) const {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx = nullptr;
    REQUIRE(EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), nullptr, pkey) == 1);
    if (alg == "PS256") {
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
      EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    size_t len = 0;
    EVP_DigestSign(ctx, nullptr, &len,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    std::string sig(len, '\0');
    REQUIRE(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                           reinterpret_cast<const unsigned char*>(input.data()),
                           input.size()) == 1);
    sig.resize(len);
    EVP_MD_CTX_free(ctx);
    if (alg == "ES256") {  // DER -> r || s
      const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
      ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
      std::string raw(64, '\0');
      BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
      BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
      ECDSA_SIG_free(es);
      return raw;
    }
    return sig;
  }
};

std::string hs256(const std::string& secret, const std::string& input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

std::string token(const Json& header, const Json& claims, const std::string& secret,
                  const Key* key = nullptr) {
  const std::string input = b64url(header.dump()) + "." + b64url(claims.dump());
  const std::string alg = header.value("alg", "");
  const std::string sig = key != nullptr ? key->sign(alg, input) : hs256(secret, input);
  return input + "." + b64url(sig);
}

const int64_t kNow = static_cast<int64_t>(std::time(nullptr));

struct JwtFixture : PluginFixture {
  explicit JwtFixture(Json config = Json::object()) {
    consumer = add("consumers", {{"username", "bob"}});
    add("jwt_secrets", {{"consumer", {{"id", consumer["id"]}}}, {"key", "issuer-1"},
                        {"secret", "s3cret"}});
    add("plugins", {{"name", "jwt"}, {"route", {{"id", routeId()}}}, {"config", config}});
    REQUIRE(apply().ToString() == "OK");
  }
  WireResponse bearer(const std::string& t) { return get("/x", "Authorization: Bearer " + t + "\r\n"); }
  Json consumer;
};

TEST_CASE("jwt schema") {
  Json d = testing::pluginDefaults({{"name", "jwt"}});
  CHECK(d["config"]["uri_param_names"] == Json::array({"jwt"}));
  CHECK(d["config"]["header_names"] == Json::array({"authorization"}));
  CHECK(d["config"]["key_claim_name"] == "iss");
  CHECK(testing::pluginSchemaError({{"name", "jwt"}, {"config", {{"maximum_expiration", 60}}}}) ==
        "@entity: expected to contain: exp");
  CHECK(testing::pluginSchemaError({{"name", "jwt"},
                                    {"config", {{"maximum_expiration", 60},
                                                {"claims_to_verify", {"exp"}}}}}).empty());
  CHECK(testing::pluginSchemaError({{"name", "jwt"}, {"config", {{"claims_to_verify", {"iat"}}}}}) ==
        "config.claims_to_verify.1: expected one of: exp, nbf");
}

TEST_CASE("jwt: token decoding refuses alg none and garbage") {
  using namespace plugins::jwt;
  DecodedToken t;
  CHECK(decodeToken(b64url(R"({"alg":"none"})") + "." + b64url(R"({"iss":"a"})") + ".",
                    &t) == DecodeError::kInvalidAlg);
  CHECK(decodeToken("a.b", &t) == DecodeError::kInvalidJson);
  CHECK(decodeToken("!!.!!.!!", &t) == DecodeError::kInvalidJson);
  CHECK(decodeToken(b64url("[1]") + "." + b64url("{}") + ".", &t) == DecodeError::kInvalidJson);
  CHECK(decodeToken(std::string(70000, 'a'), &t) == DecodeError::kInvalidJson);
  std::string deep = std::string(1000, '[') + std::string(1000, ']');
  CHECK(decodeToken(b64url(deep) + "." + b64url("{}") + ".", &t) == DecodeError::kInvalidJson);
}

TEST_CASE("jwt: HS256 through the proxy, sources and failures with Kong's exact bodies") {
  JwtFixture f;
  const Json hdr = {{"alg", "HS256"}, {"typ", "JWT"}};
  const std::string good = token(hdr, {{"iss", "issuer-1"}}, "s3cret");
  WireResponse r = f.bearer(good);
  REQUIRE(r.status == 200);
  CHECK(PluginFixture::upstreamHeader(r, "X-Consumer-Username") == "bob");
  CHECK(PluginFixture::upstreamHeader(r, "X-Credential-Identifier") == "issuer-1");
  CHECK(f.get("/x?jwt=" + good).status == 200);

  r = f.get("/x");
  CHECK(r.status == 401);
  CHECK(r.body == R"({"message":"Unauthorized"})");
  CHECK(r.header("WWW-Authenticate") == "Bearer");
  r = f.get("/x?jwt=" + good, "Authorization: Bearer " + token(hdr, {{"iss", "x"}}, "s") + "\r\n");
  CHECK(r.body == R"({"message":"Multiple tokens provided"})");
  CHECK(r.header("WWW-Authenticate") == "Bearer error=\"invalid_token\"");
  CHECK(f.bearer("abc.def").body == R"({"message":"Bad token; invalid JSON"})");
  CHECK(f.bearer(token({{"alg", "none"}}, {{"iss", "issuer-1"}}, "")).body ==
        R"({"message":"Bad token; invalid alg"})");
  CHECK(f.bearer(token(hdr, {{"sub", "x"}}, "s3cret")).body ==
        R"({"message":"No mandatory 'iss' in claims"})");
  CHECK(f.bearer(token(hdr, {{"iss", ""}}, "s3cret")).body ==
        R"({"message":"Invalid 'iss' in claims"})");
  CHECK(f.bearer(token(hdr, {{"iss", "nobody"}}, "s3cret")).body ==
        R"({"message":"No credentials found for given 'iss'"})");
  CHECK(f.bearer(token({{"alg", "HS512"}}, {{"iss", "issuer-1"}}, "s3cret")).body ==
        R"({"message":"Invalid algorithm"})");
  r = f.bearer(token(hdr, {{"iss", "issuer-1"}}, "wrong"));
  CHECK(r.status == 401);
  CHECK(r.body == R"({"message":"Invalid signature"})");
  CHECK(f.bearer(std::string(20000, 'x')).status == 401);
}

TEST_CASE("jwt: exp, nbf and maximum_expiration") {
  JwtFixture f(Json{{"claims_to_verify", {"exp", "nbf"}}, {"maximum_expiration", 600}});
  const Json hdr = {{"alg", "HS256"}};
  CHECK(f.bearer(token(hdr, {{"iss", "issuer-1"}, {"exp", kNow + 60}, {"nbf", kNow - 10}},
                       "s3cret")).status == 200);
  CHECK(Json::parse(f.bearer(token(hdr, {{"iss", "issuer-1"}, {"exp", kNow - 1}, {"nbf", kNow + 100}},
                                   "s3cret")).body) ==
        Json({{"exp", "token expired"}, {"nbf", "token not valid yet"}}));
  CHECK(Json::parse(f.bearer(token(hdr, {{"iss", "issuer-1"}, {"exp", "soon"}, {"nbf", 1}},
                                   "s3cret")).body) == Json({{"exp", "must be a number"}}));
  CHECK(f.bearer(token(hdr, {{"iss", "issuer-1"}, {"exp", kNow + 3600}, {"nbf", 1}}, "s3cret")).body ==
        R"({"exp":"exceeds maximum allowed expiration"})");
}

TEST_CASE("jwt: RS256, PS256 and ES256 with the credential's public key") {
  for (const auto& [alg, type] : {std::pair<std::string, const char*>{"RS256", "RSA"},
                                  {"PS256", "RSA"}, {"ES256", "EC"}}) {
    Key key(type);
    PluginFixture f;
    Json c = f.add("consumers", {{"username", "alice"}});
    f.add("jwt_secrets", {{"consumer", {{"id", c["id"]}}}, {"key", "k-" + alg},
                          {"algorithm", alg}, {"rsa_public_key", key.publicPem()}});
    f.add("plugins", {{"name", "jwt"}, {"config", {{"cookie_names", {"token"}}}}});
    REQUIRE(f.apply().ToString() == "OK");
    const std::string t = token({{"alg", alg}}, {{"iss", "k-" + alg}}, "", &key);
    INFO(alg);
    CHECK(f.get("/x", "Cookie: a=b; token=" + t + "\r\n").status == 200);
    Key other(type);
    CHECK(f.get("/x", "Authorization: Bearer " +
                          token({{"alg", alg}}, {{"iss", "k-" + alg}}, "", &other) + "\r\n")
              .body == R"({"message":"Invalid signature"})");
    // An HS256 token for an RS/ES credential: the algorithm must be the credential's.
    CHECK(f.get("/x", "Authorization: Bearer " +
                          token({{"alg", "HS256"}}, {{"iss", "k-" + alg}}, key.publicPem()) +
                          "\r\n")
              .body == R"({"message":"Invalid algorithm"})");
  }
}

TEST_CASE("jwt: anonymous and secret_is_base64") {
  PluginFixture f;
  Json anon = f.add("consumers", {{"username", "anon"}});
  Json bob = f.add("consumers", {{"username", "bob"}});
  f.add("jwt_secrets", {{"consumer", {{"id", bob["id"]}}}, {"key", "b64"},
                        {"secret", b64url("raw secret bytes")}});
  f.add("plugins", {{"name", "jwt"},
                    {"config", {{"anonymous", "anon"}, {"secret_is_base64", true}}}});
  REQUIRE(f.apply().ToString() == "OK");
  WireResponse r = f.get("/x");
  REQUIRE(r.status == 200);
  CHECK(PluginFixture::upstreamHeader(r, "X-Anonymous-Consumer") == "true");
  r = f.get("/x", "Authorization: Bearer " +
                      token({{"alg", "HS256"}}, {{"iss", "b64"}}, "raw secret bytes") + "\r\n");
  REQUIRE(r.status == 200);
  CHECK(PluginFixture::upstreamHeader(r, "X-Consumer-Username") == "bob");
}

}  // namespace
}  // namespace portico::dp
