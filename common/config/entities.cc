#include "common/config/entities.h"

#include <cmath>
#include <cstdlib>

#include "common/config/entities/entity_schemas.h"
#include "common/config/pem.h"
#include "common/config/typedefs.h"

namespace portico::config {
namespace {

std::vector<const EntitySchema*>* buildSchemas() {
  auto* out = new std::vector<const EntitySchema*>();
  for (EntitySchema s :
       {servicesSchema(), routesSchema(), consumersSchema(), pluginsSchema(), upstreamsSchema(),
        targetsSchema(), certificatesSchema(), snisSchema(), caCertificatesSchema(),
        keyauthCredentialsSchema(), basicauthCredentialsSchema(), jwtSecretsSchema(),
        hmacauthCredentialsSchema(), aclsSchema()}) {
    out->push_back(new EntitySchema(std::move(s)));
  }
  return out;
}

}  // namespace

const std::vector<const EntitySchema*>& allEntitySchemas() {
  static const auto* const kSchemas = buildSchemas();
  return *kSchemas;
}

const EntitySchema* findEntitySchema(const std::string& name) {
  for (const EntitySchema* s : allEntitySchemas()) {
    if (s->name == name) {
      return s;
    }
  }
  return nullptr;
}

FieldErrors processEntityJson(const std::string& entity, const Json& input, Json* out) {
  const EntitySchema* schema = findEntitySchema(entity);
  if (schema == nullptr) {
    return {{entity, "", "@entity", "unknown entity"}};
  }
  if (entity == "plugins" && input.is_object()) {
    auto name = input.find("name");
    if (name != input.end() && name->is_string()) {
      if (std::string too_long = checkMaxLength(name->get_ref<const std::string&>(), kMaxNameLength);
          !too_long.empty()) {
        *out = input;
        return {{"plugins", "", "name", too_long}};
      }
      const PluginSchema* plugin = findPluginSchema(name->get<std::string>());
      if (plugin == nullptr) {
        *out = input;
        return {{"plugins", "", "name",
                 "plugin '" + name->get<std::string>() +
                     "' not enabled; add it to the 'plugins' configuration property"}};
      }
      schema = &pluginEntitySchema(*plugin);
    }
  }
  FieldErrors errors = processEntity(*schema, input, out);
  if (!errors.empty()) {
    return errors;
  }
  for (const auto& f : schema->fields) {
    if (f.auto_random && (*out)[f.name].is_null()) {
      (*out)[f.name] = randomHex32();
    }
  }
  if (entity == "ca_certificates") {
    (*out)["cert_digest"] = sha256Hex((*out)["cert"].get<std::string>());
  }
  return errors;
}

size_t maxEntityBytes(const std::string& entity) {
  // A plugin's config (allow lists, templates) and a certificate's PEM chains (cert, key and
  // their _alt pair) legitimately run past 64 KiB.
  return entity == "plugins" || entity == "certificates" ? kMaxLargeEntityBytes
                                                         : kMaxEntityBytes;
}

namespace {

// An upper bound of `v`'s compact JSON text's length, without writing it: each string byte
// is at most 6 (a \u00XX escape; an invalid UTF-8 byte becomes 3 as U+FFFD), a number at
// most 32. Stops counting past `limit`. Checking every entity of a 10,000-route file by
// writing its text was ~5% of the file's load.
size_t jsonLengthBound(const Json& v, size_t limit) {
  switch (v.type()) {
    case Json::value_t::string:
      return 2 + 6 * v.get_ref<const std::string&>().size();
    case Json::value_t::array: {
      size_t n = 2;
      for (const Json& e : v) {
        n += jsonLengthBound(e, limit) + 1;
        if (n > limit) {
          break;
        }
      }
      return n;
    }
    case Json::value_t::object: {
      size_t n = 2;
      for (auto it = v.begin(); it != v.end(); ++it) {
        n += 2 + 6 * it.key().size() + 1 + jsonLengthBound(it.value(), limit) + 1;
        if (n > limit) {
          break;
        }
      }
      return n;
    }
    default:
      return 32;  // numbers, booleans, null
  }
}

}  // namespace

FieldErrors checkEntitySize(const std::string& entity, const Json& entity_json) {
  const size_t max = maxEntityBytes(entity);
  if (jsonLengthBound(entity_json, max) <= max) {
    return {};
  }
  // `replace`: a form body may carry invalid UTF-8 in a field no rule inspects.
  const size_t size = entity_json.dump(-1, ' ', false, Json::error_handler_t::replace).size();
  if (size <= max) {
    return {};
  }
  return {{entity, "", "@entity",
           "entity size must be at most " + std::to_string(max) + " bytes (got " +
               std::to_string(size) + ")"}};
}

namespace {

Json coerceValue(const Field& f, const Json& v) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    switch (f.type) {
      case FieldType::kInteger:
      case FieldType::kNumber: {
        char* end = nullptr;
        const double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && end != nullptr && *end == '\0') {
          return std::floor(d) == d && std::fabs(d) < 9e15 ? Json(static_cast<int64_t>(d)) : Json(d);
        }
        return v;
      }
      case FieldType::kBoolean:
        return s == "true" ? Json(true) : s == "false" ? Json(false) : v;
      case FieldType::kArray:
      case FieldType::kSet:
        return Json::array({coerceValue(*f.elements, v)});
      default:
        return v;
    }
  }
  if (v.is_array() && f.elements && (f.type == FieldType::kArray || f.type == FieldType::kSet)) {
    Json out = Json::array();
    for (const auto& e : v) {
      out.push_back(coerceValue(*f.elements, e));
    }
    return out;
  }
  if (v.is_object() && f.type == FieldType::kRecord) {
    Json out = v;
    for (const auto& sub : f.fields) {
      if (out.contains(sub.name)) {
        out[sub.name] = coerceValue(sub, out[sub.name]);
      }
    }
    return out;
  }
  return v;
}

}  // namespace

Json coerceFormValues(const std::string& entity, const Json& input) {
  const EntitySchema* schema = findEntitySchema(entity);
  if (schema == nullptr || !input.is_object()) {
    return input;
  }
  if (entity == "plugins" && input.contains("name") && input["name"].is_string()) {
    if (const PluginSchema* p = findPluginSchema(input["name"].get<std::string>())) {
      schema = &pluginEntitySchema(*p);
    }
  }
  Json out = input;
  for (const auto& f : schema->fields) {
    if (out.contains(f.name)) {
      out[f.name] = coerceValue(f, out[f.name]);
    }
  }
  return out;
}

}  // namespace portico::config
