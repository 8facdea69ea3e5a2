#include "common/config/entities/entity_schemas.h"

#include "common/config/typedefs.h"

namespace portico::config {

EntitySchema snisSchema() {
  EntitySchema s;
  s.name = "snis";
  s.endpoint_key = "name";
  s.fields = {idField(),
              timestampField("created_at"),
              timestampField("updated_at"),
              Field::string("name").req().lenMax(kMaxHostLength).isUnique().validator([](Json& v) {
                return checkSni(v.get<std::string>());
              }),
              tagsField(),
              Field::foreign("certificate", "certificates").req().cascade()};
  return s;
}

}  // namespace portico::config
