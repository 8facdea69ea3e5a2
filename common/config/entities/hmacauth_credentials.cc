#include "common/config/entities/entity_schemas.h"

#include "common/config/typedefs.h"

namespace portico::config {

EntitySchema hmacauthCredentialsSchema() {
  return credentialSchema("hmacauth_credentials", "hmac-auths", "username",
                          {Field::string("username").req().lenMax(kMaxNameLength).isUnique(),
                           Field::string("secret").lenMax(kMaxSecretLength).autoRandom()});
}

}  // namespace portico::config
