#include "common/config/kong_json.h"

#include "common/config/entities.h"

namespace portico::config {

Json mergePatch(Json current, const Json& patch, bool is_service) {
  if (!patch.is_object()) {
    return patch;
  }
  const Json expanded = is_service ? expandShorthands(*findEntitySchema("services"), patch) : patch;
  for (auto it = expanded.begin(); it != expanded.end(); ++it) {
    current[it.key()] = it.value();
  }
  return current;
}

std::string schemaViolationMessage(const FieldErrors& errors) {
  if (errors.size() == 1) {
    return "schema violation (" + errorSummary(errors) + ")";
  }
  return std::to_string(errors.size()) + " schema violations (" + errorSummary(errors) + ")";
}

Json schemaViolationBody(const FieldErrors& errors) {
  return Json{{"code", 2},
              {"name", "schema violation"},
              {"message", schemaViolationMessage(errors)},
              {"fields", fieldsObject(errors)}};
}

}  // namespace portico::config
