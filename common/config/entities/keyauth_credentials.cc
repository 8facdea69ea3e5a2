#include "common/config/entities/entity_schemas.h"

#include "common/config/typedefs.h"

namespace portico::config {

EntitySchema keyauthCredentialsSchema() {
  return credentialSchema("keyauth_credentials", "key-auths", "key",
                          {Field::string("key").lenMax(kMaxSecretLength).isUnique().autoRandom(),
                           Field::integer("ttl").range(0, 100000000)});
}

}  // namespace portico::config
