#include "common/config/entities/entity_schemas.h"

#include "common/config/typedefs.h"

namespace portico::config {

EntitySchema aclsSchema() {
  EntitySchema acls = credentialSchema("acls", "acls", "group",
                                       {Field::string("group").req().lenMax(kMaxNameLength)});
  // A group once per consumer (Kong's cache_key {consumer, group}).
  acls.unique_keys = {{{"consumer", "group"}, {}}};
  return acls;
}

}  // namespace portico::config
