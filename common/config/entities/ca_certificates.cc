#include "common/config/entities/entity_schemas.h"

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/config/pem.h"
#include "common/config/typedefs.h"

namespace portico::config {

EntitySchema caCertificatesSchema() {
  EntitySchema s;
  s.name = "ca_certificates";
  s.fields = {idField(),
              timestampField("created_at"),
              timestampField("updated_at"),
              Field::string("cert").req().validator(certificateCheck),
              Field::string("cert_digest").isUnique(),
              tagsField()};
  EntityCheck ca;
  ca.fields = {"cert"};
  ca.fn = [](const Json& e) -> std::string {
    const std::string pem = e["cert"].get<std::string>();
    size_t count = 0;
    for (size_t pos = pem.find("-----BEGIN CERTIFICATE-----"); pos != std::string::npos;
         pos = pem.find("-----BEGIN CERTIFICATE-----", pos + 1)) {
      ++count;
    }
    if (count > 1) {
      return "please submit only one certificate at a time";
    }
    X509Ptr cert = parseCert(pem);
    if (cert == nullptr) {
      return "";
    }
    if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0) {
      return "certificate expired, \"Not After\" time is in the past";
    }
    const uint32_t flags = X509_get_extension_flags(cert.get());
    if ((flags & EXFLAG_BCONS) == 0 || (flags & EXFLAG_CA) == 0) {
      return "certificate does not appear to be a CA because it is missing the \"CA\" basic "
             "constraint";
    }
    return "";
  };
  s.checks = {ca};
  return s;
}

}  // namespace portico::config
