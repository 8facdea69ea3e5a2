#include "common/config/entities/entity_schemas.h"

#include "common/config/typedefs.h"

namespace portico::config {

EntitySchema consumersSchema() {
  EntitySchema s;
  s.name = "consumers";
  s.endpoint_key = "username";
  s.fields = {idField(), timestampField("created_at"), timestampField("updated_at"),
              Field::string("username").lenMax(kMaxNameLength).isUnique(),
              Field::string("custom_id").lenMax(kMaxNameLength).isUnique(),
              tagsField()};
  EntityCheck c;
  c.kind = EntityCheck::Kind::kAtLeastOneOf;
  c.fields = {"custom_id", "username"};
  s.checks = {c};
  return s;
}

}  // namespace portico::config
