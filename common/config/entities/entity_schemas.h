// The entity descriptions, one per file in this folder, collected by the registry
// (common/config/entities.cc: allEntitySchemas()). Only the registry includes this.
#pragma once

#include "common/config/entities.h"

namespace portico::config {

EntitySchema servicesSchema();
EntitySchema routesSchema();
EntitySchema consumersSchema();
EntitySchema pluginsSchema();
EntitySchema upstreamsSchema();
EntitySchema targetsSchema();
EntitySchema certificatesSchema();
EntitySchema snisSchema();
EntitySchema caCertificatesSchema();
EntitySchema keyauthCredentialsSchema();
EntitySchema basicauthCredentialsSchema();
EntitySchema jwtSecretsSchema();
EntitySchema hmacauthCredentialsSchema();
EntitySchema aclsSchema();

}  // namespace portico::config
