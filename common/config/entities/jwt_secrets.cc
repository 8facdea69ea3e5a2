#include "common/config/entities/entity_schemas.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <memory>

#include "common/config/pem.h"
#include "common/config/typedefs.h"

namespace portico::config {

EntitySchema jwtSecretsSchema() {
  EntitySchema s = credentialSchema(
      "jwt_secrets", "jwts", "key",
      {Field::string("key").lenMax(kMaxSecretLength).isUnique().autoRandom(),
       Field::string("secret").lenMax(kMaxSecretLength).autoRandom(),
       Field::string("rsa_public_key"),
       Field::string("algorithm").def("HS256").oneOf(
           jsonList({"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384",
                     "ES512", "PS256", "PS384", "PS512", "EdDSA"}))});
  EntityCheck c;
  c.kind = EntityCheck::Kind::kConditional;
  c.if_field = "algorithm";
  c.if_one_of = jsonList({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384",
                          "PS512", "EdDSA"});
  c.then_field = "rsa_public_key";
  EntityCheck pem;
  pem.fields = {"rsa_public_key"};
  pem.fn = [](const Json& e) -> std::string {
    const std::string text = e["rsa_public_key"].get<std::string>();
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), BIO_free);
    PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
    ERR_clear_error();
    return key == nullptr ? "'rsa_public_key' format is invalid" : "";
  };
  s.checks = {c, pem};
  return s;
}

}  // namespace portico::config
