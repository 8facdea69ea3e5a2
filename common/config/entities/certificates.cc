#include "common/config/entities/entity_schemas.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/config/pem.h"
#include "common/config/typedefs.h"

namespace portico::config {

EntitySchema certificatesSchema() {
  EntitySchema s;
  s.name = "certificates";
  s.fields = {idField(),
              timestampField("created_at"),
              timestampField("updated_at"),
              Field::string("cert").req().validator(certificateCheck),
              Field::string("key").req().validator(keyCheck),
              Field::string("cert_alt").validator(certificateCheck),
              Field::string("key_alt").validator(keyCheck),
              tagsField(),
              Field::array("snis", Field::string("sni").validator([](Json& v) {
                return checkSni(v.get<std::string>());
              })).isTransient()};
  EntityCheck mutual;
  mutual.kind = EntityCheck::Kind::kMutuallyRequired;
  mutual.fields = {"cert_alt", "key_alt"};
  EntityCheck match;
  match.fields = {"cert", "key"};
  match.fn = [](const Json& e) {
    return certKeyMatch(e, "cert", "key", "certificate does not match key");
  };
  EntityCheck alt_match;
  alt_match.fields = {"cert_alt", "key_alt"};
  alt_match.fn = [](const Json& e) {
    return certKeyMatch(e, "cert_alt", "key_alt", "alternative certificate does not match key");
  };
  EntityCheck types;
  types.fields = {"cert", "cert_alt"};
  types.fn = [](const Json& e) -> std::string {
    X509Ptr a = parseCert(e["cert"].get<std::string>());
    X509Ptr b = parseCert(e["cert_alt"].get<std::string>());
    if (a == nullptr || b == nullptr) {
      return "";
    }
    if (EVP_PKEY_base_id(X509_get0_pubkey(a.get())) == EVP_PKEY_base_id(X509_get0_pubkey(b.get()))) {
      return "certificate and alternative certificate need to have different type (e.g. RSA "
             "and ECDSA), the provided certificates were both of the same type";
    }
    return "";
  };
  s.checks = {mutual, match, alt_match, types};
  return s;
}

}  // namespace portico::config
