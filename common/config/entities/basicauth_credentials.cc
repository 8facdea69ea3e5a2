#include "common/config/entities/entity_schemas.h"

#include <openssl/sha.h>

#include "common/config/typedefs.h"

namespace portico::config {

EntitySchema basicauthCredentialsSchema() {
  return credentialSchema("basicauth_credentials", "basic-auths", "username",
                          {Field::string("username").req().lenMax(kMaxNameLength).isUnique(),
                           Field::string("password").req().lenMax(kMaxSecretLength)});
}

std::string basicAuthHash(const std::string& password, const std::string& consumer_id) {
  const std::string input = password + consumer_id;
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), md);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : md) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

}  // namespace portico::config
