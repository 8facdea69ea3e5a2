#include "common/config/schema.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/container/flat_hash_set.h"
#include "common/config/typedefs.h"
#include "re2/re2.h"

namespace portico::config {

Field Field::make(std::string name, FieldType type) {
  Field f;
  f.name = std::move(name);
  f.type = type;
  return f;
}
Field Field::array(std::string name, Field elements) {
  Field f = make(std::move(name), FieldType::kArray);
  f.elements = std::make_shared<const Field>(std::move(elements));
  return f;
}
Field Field::set(std::string name, Field elements) {
  Field f = make(std::move(name), FieldType::kSet);
  f.elements = std::make_shared<const Field>(std::move(elements));
  return f;
}
Field Field::map(std::string name, Field keys, Field values) {
  Field f = make(std::move(name), FieldType::kMap);
  f.keys = std::make_shared<const Field>(std::move(keys));
  f.elements = std::make_shared<const Field>(std::move(values));
  return f;
}
Field Field::record(std::string name, std::vector<Field> fields) {
  Field f = make(std::move(name), FieldType::kRecord);
  f.fields = std::move(fields);
  return f;
}
Field Field::foreign(std::string name, std::string reference) {
  Field f = make(std::move(name), FieldType::kForeign);
  f.reference = std::move(reference);
  return f;
}

#define PORTICO_FIELD_SETTER(method, args, stmt) \
  Field Field::method(args) const {              \
    Field f = *this;                             \
    stmt;                                        \
    return f;                                    \
  }
PORTICO_FIELD_SETTER(req, , f.required = true)
PORTICO_FIELD_SETTER(def, Json value, f.default_value = std::move(value))
PORTICO_FIELD_SETTER(oneOf, std::vector<Json> values, f.one_of = std::move(values))
Field Field::range(double lo, double hi) const {
  Field f = *this;
  f.between = std::make_pair(lo, hi);
  return f;
}
PORTICO_FIELD_SETTER(lenMin, int64_t n, f.len_min = n)
PORTICO_FIELD_SETTER(lenMax, int64_t n, f.len_max = n)
Field Field::matches(std::string re) const {
  Field f = *this;
  f.match_re = std::make_shared<const RE2>(re);
  f.match = std::move(re);
  return f;
}
PORTICO_FIELD_SETTER(validator, CustomValidator fn, f.custom = std::move(fn))
PORTICO_FIELD_SETTER(isUnique, , f.unique = true)
PORTICO_FIELD_SETTER(cascade, , f.on_delete_cascade = true)
PORTICO_FIELD_SETTER(isNull, , f.must_be_null = true)
PORTICO_FIELD_SETTER(autoRandom, , f.auto_random = true)
PORTICO_FIELD_SETTER(isTransient, , f.transient = true)
PORTICO_FIELD_SETTER(defaultFrom, DefaultFunction fn, f.default_from = std::move(fn))
PORTICO_FIELD_SETTER(nullAsDefault, , f.null_as_default = true)
PORTICO_FIELD_SETTER(emptyAsNull, , f.empty_as_null = true)
PORTICO_FIELD_SETTER(wrapScalar, , f.wrap_scalar = true)
PORTICO_FIELD_SETTER(keyedValueErrors, , f.keyed_value_errors = true)
#undef PORTICO_FIELD_SETTER

const Field* EntitySchema::field(const std::string& n) const {
  for (const auto& f : fields) {
    if (f.name == n) {
      return &f;
    }
  }
  return nullptr;
}

std::vector<const Field*> EntitySchema::foreignFields() const {
  std::vector<const Field*> out;
  for (const auto& f : fields) {
    if (f.type == FieldType::kForeign) {
      out.push_back(&f);
    }
  }
  return out;
}

std::vector<UniqueKey> EntitySchema::allUniqueKeys() const {
  std::vector<UniqueKey> out;
  for (const auto& f : fields) {
    if (f.unique) {
      out.push_back({{f.name}, {}});
    }
  }
  out.insert(out.end(), unique_keys.begin(), unique_keys.end());
  return out;
}

namespace {

// Runs a custom validator. Validators read the value with nlohmann's typed getters, and a
// value of another type, such as an explicit null where a string has a default ("policy":
// null), makes those throw: that is reported on the field like any invalid value, never
// thrown out of validation (the Admin API, the declarative loader and the DP all validate).
std::string runCustomValidator(const CustomValidator& fn, Json& v) {
  try {
    return fn(v);
  } catch (const nlohmann::json::exception& e) {
    std::string_view what = e.what();  // "[json.exception.type_error.302] type must be ..."
    if (const size_t at = what.find("] "); at != std::string_view::npos) {
      what.remove_prefix(at + 2);
    }
    return "invalid value: " + std::string(what);
  }
}

std::string formatNumber(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

std::string scalarText(const Json& v) {
  if (v.is_string()) {
    return v.get<std::string>();
  }
  if (v.is_number()) {
    return formatNumber(v.get<double>());
  }
  return v.dump();
}

bool isEmptyValue(const Json& v) {
  return v.is_null() || (v.is_array() && v.empty()) || (v.is_string() && v.get<std::string>().empty());
}

class Processor {
 public:
  Processor(const ProcessOptions& options, FieldErrors* errors)
      : options_(options), errors_(errors) {}

  void error(const std::string& path, const std::string& reason) {
    // A set, not a scan of *errors_: a 1 MiB body can hold 100k bad elements.
    if (seen_.insert(path + '\n' + reason).second) {
      errors_->push_back(FieldError{"", "", path, reason});
    }
  }

  bool hasError(const std::string& path) const {
    for (const auto& e : *errors_) {
      if (e.field == path || (e.field.size() > path.size() && e.field.compare(0, path.size(), path) == 0 &&
                              e.field[path.size()] == '.')) {
        return true;
      }
    }
    return false;
  }

  // Form values arrive as strings; turn them into the field's type when they parse.
  Json coerce(const Field& f, const Json& v) {
    if (!options_.coerce_strings || !v.is_string()) {
      if (options_.coerce_strings && (f.type == FieldType::kArray || f.type == FieldType::kSet) &&
          !v.is_array() && !v.is_object() && !v.is_null()) {
        return Json::array({v});
      }
      return v;
    }
    const std::string s = v.get<std::string>();
    switch (f.type) {
      case FieldType::kInteger:
      case FieldType::kNumber: {
        char* end = nullptr;
        const double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && end != nullptr && *end == '\0') {
          return std::floor(d) == d && std::fabs(d) < 9e15 ? Json(static_cast<int64_t>(d))
                                                           : Json(d);
        }
        return v;
      }
      case FieldType::kBoolean:
        if (s == "true") return true;
        if (s == "false") return false;
        return v;
      case FieldType::kArray:
      case FieldType::kSet:
        return Json::array({v});
      default:
        return v;
    }
  }

  // Processes a present, non-null value. Returns the normalized value. Containers are
  // built from the input element by element; only scalars are copied whole (arrays, maps and
  // records were copied whole first, then rebuilt: twice the allocations).
  Json value(const Field& f, const Json& raw, const std::string& path) {
    Json coerced;
    if (options_.coerce_strings) {
      coerced = coerce(f, raw);
    }
    const Json& in = options_.coerce_strings ? coerced : raw;
    if (f.must_be_null) {
      error(path, "value must be null");
      return in;
    }
    const bool container = f.type == FieldType::kArray || f.type == FieldType::kSet ||
                           f.type == FieldType::kMap || f.type == FieldType::kRecord;
    Json v = container ? Json() : in;
    switch (f.type) {
      case FieldType::kString: {
        if (!v.is_string()) {
          error(path, "expected a string");
          return v;
        }
        const std::string& s = v.get_ref<const std::string&>();
        const int64_t len_min = f.len_min.value_or(1);
        if (static_cast<int64_t>(s.size()) < len_min) {
          error(path, "length must be at least " + std::to_string(len_min));
          return v;
        }
        if (f.len_max && static_cast<int64_t>(s.size()) > *f.len_max) {
          error(path, "length must be at most " + std::to_string(*f.len_max));
          return v;
        }
        if (f.uuid && !isUuid(s)) {
          error(path, "expected a valid UUID");
          return v;
        }
        break;
      }
      case FieldType::kInteger:
        if (!v.is_number() || std::floor(v.get<double>()) != v.get<double>()) {
          error(path, "expected an integer");
          return v;
        }
        if (v.is_number_float()) {
          v = static_cast<int64_t>(v.get<double>());
        }
        break;
      case FieldType::kNumber:
        if (!v.is_number()) {
          error(path, "expected a number");
          return v;
        }
        break;
      case FieldType::kBoolean:
        if (!v.is_boolean()) {
          error(path, "expected a boolean");
          return v;
        }
        break;
      case FieldType::kArray:
      case FieldType::kSet: {
        const bool is_set = f.type == FieldType::kSet;
        Json wrapped;
        const Json* a = &in;
        if (f.wrap_scalar && a->is_string()) {
          wrapped = Json::array({*a});
          a = &wrapped;
        }
        if (a->is_object() && a->empty()) {
          wrapped = Json::array();  // Lua's cjson encodes an empty array as {}
          a = &wrapped;
        }
        if (!a->is_array()) {
          error(path, is_set ? "expected a set" : "expected an array");
          return *a;
        }
        Json out = Json::array();
        out.get_ref<Json::array_t&>().reserve(a->size());
        // Sets of strings (tags, allow lists) are checked against a hash set: the linear scan
        // took ~12 s of CPU for the 110,000 short tags a 1 MiB body holds (measured 1.6 s
        // for 40,000, quadratic).
        absl::flat_hash_set<std::string> strings;
        for (size_t i = 0; i < a->size(); ++i) {
          const std::string epath = path + "." + std::to_string(i + 1);
          if ((*a)[i].is_null()) {
            error(epath, "required field missing");
            continue;
          }
          Json e = value(*f.elements, (*a)[i], epath);
          if (is_set && (e.is_string() ? !strings.insert(e.get<std::string>()).second
                                       : std::find(out.begin(), out.end(), e) != out.end())) {
            continue;
          }
          out.push_back(std::move(e));
        }
        v = std::move(out);
        if (f.len_min && static_cast<int64_t>(v.size()) < *f.len_min) {
          error(path, "length must be at least " + std::to_string(*f.len_min));
        }
        if (f.len_max && static_cast<int64_t>(v.size()) > *f.len_max) {
          error(path, "length must be at most " + std::to_string(*f.len_max));
        }
        break;
      }
      case FieldType::kMap: {
        if (!in.is_object()) {
          error(path, "expected a map");
          return in;
        }
        Json out = Json::object();
        for (auto it = in.begin(); it != in.end(); ++it) {
          // Kong reports a map value's errors at the map's own path (no key in it); a route's
          // headers name the key.
          Json key = it.key();
          if (f.keys) {
            value(*f.keys, key, path);
          }
          if (f.keyed_value_errors) {
            out[it.key()] = value(*f.elements, *it, path + "." + it.key());
          } else {
            out[it.key()] = it->is_null() ? Json() : value(*f.elements, *it, path);
          }
        }
        v = std::move(out);
        if (f.len_min && static_cast<int64_t>(v.size()) < *f.len_min) {
          error(path, "length must be at least " + std::to_string(*f.len_min));
        }
        if (f.len_max && static_cast<int64_t>(v.size()) > *f.len_max) {
          error(path, "length must be at most " + std::to_string(*f.len_max));
        }
        break;
      }
      case FieldType::kRecord: {
        if (!in.is_object()) {
          error(path, "expected a record");
          return in;
        }
        v = record(f.fields, in, path + ".");
        break;
      }
      case FieldType::kForeign: {
        if (!v.is_object()) {
          error(path, "expected a record");
          return v;
        }
        auto id = v.find("id");
        if (id == v.end() || id->is_null()) {
          error(path + ".id", "missing primary key");
          return v;
        }
        if (!id->is_string()) {
          error(path + ".id", "expected a string");
          return v;
        }
        if (!isUuid(id->get<std::string>())) {
          error(path + ".id", "expected a valid UUID");
          return v;
        }
        v = Json{{"id", *id}};
        break;
      }
      case FieldType::kJson:
        break;
    }
    if (!f.one_of.empty() && std::find(f.one_of.begin(), f.one_of.end(), v) == f.one_of.end()) {
      std::string list;
      for (const auto& o : f.one_of) {
        list += (list.empty() ? "" : ", ") + scalarText(o);
      }
      error(path, "expected one of: " + list);
      return v;
    }
    if (f.between && v.is_number() &&
        (v.get<double>() < f.between->first || v.get<double>() > f.between->second)) {
      error(path, "value should be between " + formatNumber(f.between->first) + " and " +
                      formatNumber(f.between->second));
      return v;
    }
    if (!f.match.empty() && v.is_string()) {
      const bool matched = f.match_re != nullptr ? RE2::FullMatch(v.get<std::string>(), *f.match_re)
                                                 : RE2::FullMatch(v.get<std::string>(), f.match);
      if (!matched) {
        error(path, "invalid value: " + v.get<std::string>());
        return v;
      }
    }
    // A record's own validator (Kong's record custom_validator) runs only on valid fields.
    if (f.custom && !(f.type == FieldType::kRecord && hasError(path))) {
      const std::string reason = runCustomValidator(f.custom, v);
      if (!reason.empty()) {
        error(path, reason);
      }
    }
    return v;
  }

  // The value of field `f` given the input object (absent -> default, null -> null).
  Json fieldValue(const Field& f, const Json& in, const std::string& path) {
    auto it = in.find(f.name);
    const bool absent = it == in.end();
    if (absent || it->is_null()) {
      if (absent && f.default_from) {
        return f.default_from(in);
      }
      if ((absent || f.null_as_default) && f.default_value) {
        return f.type == FieldType::kRecord && f.default_value->is_object()
                   ? record(f.fields, *f.default_value, path + ".")
                   : *f.default_value;
      }
      if (absent && f.type == FieldType::kRecord && f.required) {
        return record(f.fields, Json::object(), path + ".");
      }
      if (f.required && !f.auto_value && !f.auto_random) {
        error(path, "required field missing");
      }
      return nullptr;
    }
    return value(f, *it, path);
  }

  Json record(const std::vector<Field>& fields, const Json& in, const std::string& prefix) {
    Json out = Json::object();
    // A scan, not a set of the names: records have a few dozen fields, and building the set
    // was most of a small entity's cost (the DP checks every route of a snapshot).
    for (auto it = in.begin(); it != in.end(); ++it) {
      const bool known = std::any_of(fields.begin(), fields.end(),
                                     [&](const Field& f) { return f.name == it.key(); });
      if (!known) {
        error(prefix + it.key(), "unknown field");
      }
    }
    std::string path = prefix;
    for (const auto& f : fields) {
      path.resize(prefix.size());
      path += f.name;
      Json v = fieldValue(f, in, path);
      if (f.empty_as_null && (v.is_array() || v.is_object()) && v.empty()) {
        v = nullptr;
      }
      if (!f.transient) {
        out[f.name] = std::move(v);
      }
    }
    return out;
  }

  // Expands `schema`'s shorthands present in `in` (an object). One of the wrong type is
  // reported and dropped when `report`, else left in place.
  void shorthands(const EntitySchema& schema, Json* in, bool report) {
    for (const Shorthand& s : schema.shorthands) {
      auto it = in->find(s.field.name);
      if (it == in->end()) {
        continue;
      }
      const Json v = *it;
      const size_t errors_before = errors_->size();
      if (!v.is_null()) {
        value(s.field, v, s.field.name);
      }
      const bool ok = errors_->size() == errors_before;
      if (!ok && !report) {
        errors_->resize(errors_before);
        continue;
      }
      in->erase(s.field.name);
      if (ok && !v.is_null()) {
        s.expand(v, in);
      }
    }
  }

  void checks(const std::vector<EntityCheck>& checks, const Json& entity, const Json& input) {
    for (const auto& c : checks) {
      // Nothing to skip for when no field failed: the common case, for every entity of a
      // snapshot the DP applies.
      if (!errors_->empty()) {
        bool skip = !c.if_field.empty() && (hasError(c.if_field) || hasError(c.then_field));
        for (const auto& name : c.fields) {
          skip = skip || hasError(name);
        }
        if (skip) {
          continue;
        }
      }
      // A view, not a copy: the checks only read, and copying a route's paths, hosts and
      // methods for each of its checks was a large part of checking a route.
      static const Json kNull;
      auto get = [&](const std::string& name) -> const Json& {
        if (auto it = entity.find(name); it != entity.end()) {
          return *it;
        }
        if (auto it = input.find(name); it != input.end()) {
          return *it;
        }
        // A dotted path into records ("config.redis.host"), as Kong's entity checks allow.
        if (name.find('.') != std::string::npos) {
          const Json* at = &entity;
          for (size_t start = 0; at != nullptr && start <= name.size();) {
            const size_t dot = std::min(name.find('.', start), name.size());
            const std::string part = name.substr(start, dot - start);
            auto next = at->is_object() ? at->find(part) : at->end();
            at = at->is_object() && next != at->end() ? &*next : nullptr;
            start = dot + 1;
          }
          return at != nullptr ? *at : kNull;
        }
        return kNull;
      };
      auto quoted = [&]() {
        std::string out;
        for (const auto& name : c.fields) {
          out += (out.empty() ? "'" : ", '") + name + "'";
        }
        return out;
      };
      switch (c.kind) {
        case EntityCheck::Kind::kAtLeastOneOf: {
          bool any = false;
          for (const auto& name : c.fields) {
            any = any || !isEmptyValue(get(name));
          }
          if (!any) {
            error("@entity", "at least one of these fields must be non-empty: " + quoted());
          }
          break;
        }
        case EntityCheck::Kind::kMutuallyRequired: {
          size_t set = 0;
          for (const auto& name : c.fields) {
            set += isEmptyValue(get(name)) ? 0 : 1;
          }
          if (set != 0 && set != c.fields.size()) {
            error("@entity", "all or none of these fields must be set: " + quoted());
          }
          break;
        }
        case EntityCheck::Kind::kMutuallyExclusive: {
          size_t set = 0;
          for (const auto& name : c.fields) {
            set += isEmptyValue(get(name)) ? 0 : 1;
          }
          if (set > 1) {
            error("@entity", "only one or none of these fields must be set: " + quoted());
          }
          break;
        }
        case EntityCheck::Kind::kConditional: {
          const Json& v = get(c.if_field);
          const bool listed = std::find(c.if_one_of.begin(), c.if_one_of.end(), v) !=
                              c.if_one_of.end();
          if (listed == c.if_not_one_of) {
            break;
          }
          const bool then_empty = isEmptyValue(get(c.then_field));
          if (c.then_null ? !then_empty : then_empty) {
            error(c.then_field, c.then_null ? "value must be null" : "required field missing");
            error("@entity", "failed conditional validation given value of field '" +
                                 c.if_field + "'");
          }
          break;
        }
        case EntityCheck::Kind::kCustomFields: {
          for (auto& [field, reason] : c.field_fn(entity)) {
            if (field == "@entity" || !hasError(field)) {
              error(field, reason);
            }
          }
          break;
        }
        case EntityCheck::Kind::kCustom: {
          bool all_set = true;
          for (const auto& name : c.fields) {
            all_set = all_set && !isEmptyValue(get(name));
          }
          if (!all_set && !c.fields.empty()) {
            break;  // Kong runs a custom check only when its field_sources are set
          }
          const std::string reason = c.fn(entity);
          if (!reason.empty()) {
            error("@entity", reason);
          }
          break;
        }
      }
    }
  }

 private:
  const ProcessOptions& options_;
  FieldErrors* errors_;
  absl::flat_hash_set<std::string> seen_;  // path + '\n' + reason of every error reported
};

}  // namespace

FieldErrors processEntity(const EntitySchema& schema, const Json& input, Json* out,
                          const ProcessOptions& options) {
  FieldErrors errors;
  Processor p(options, &errors);
  if (!input.is_object()) {
    p.error("@entity", "expected a record");
    *out = Json::object();
    return errors;
  }
  if (schema.shorthands.empty()) {
    *out = p.record(schema.fields, input, "");
  } else {
    Json expanded = input;
    p.shorthands(schema, &expanded, true);
    *out = p.record(schema.fields, expanded, "");
  }
  p.checks(schema.checks, *out, input);
  for (auto& e : errors) {
    e.entity_type = schema.name;
    if (out->contains("id") && (*out)["id"].is_string()) {
      e.entity_id = (*out)["id"].get<std::string>();
    }
  }
  return errors;
}

Json expandShorthands(const EntitySchema& schema, const Json& patch) {
  if (schema.shorthands.empty() || !patch.is_object()) {
    return patch;
  }
  FieldErrors ignored;
  Processor p(ProcessOptions{}, &ignored);
  Json out = patch;
  p.shorthands(schema, &out, false);
  return out;
}

FieldErrors processRecord(const Field& record, const Json& input, Json* out,
                          const std::string& path, const ProcessOptions& options) {
  FieldErrors errors;
  Processor p(options, &errors);
  if (!input.is_object()) {
    p.error(path, "expected a record");
    *out = input;
    return errors;
  }
  *out = p.record(record.fields, input, path.empty() ? "" : path + ".");
  return errors;
}

namespace {

const char* typeName(FieldType t) {
  switch (t) {
    case FieldType::kString: return "string";
    case FieldType::kInteger: return "integer";
    case FieldType::kNumber: return "number";
    case FieldType::kBoolean: return "boolean";
    case FieldType::kArray: return "array";
    case FieldType::kSet: return "set";
    case FieldType::kMap: return "map";
    case FieldType::kRecord: return "record";
    case FieldType::kForeign: return "foreign";
    case FieldType::kJson: return "json";
  }
  return "string";
}

}  // namespace

Json fieldToJson(const Field& f) {
  Json j{{"type", typeName(f.type)}};
  if (f.required) j["required"] = true;
  if (f.default_value) j["default"] = *f.default_value;
  if (f.auto_value || f.auto_random) j["auto"] = true;
  if (f.uuid) j["uuid"] = true;
  if (f.unique) j["unique"] = true;
  if (f.must_be_null) j["eq"] = nullptr;
  if (!f.one_of.empty()) j["one_of"] = f.one_of;
  if (f.between) j["between"] = Json::array({f.between->first, f.between->second});
  if (f.len_min) j["len_min"] = *f.len_min;
  if (f.len_max) j["len_max"] = *f.len_max;
  if (!f.match.empty()) j["match"] = f.match;
  if (f.elements) j[f.type == FieldType::kMap ? "values" : "elements"] = fieldToJson(*f.elements);
  if (f.keys) j["keys"] = fieldToJson(*f.keys);
  if (f.type == FieldType::kRecord) {
    Json fields = Json::array();
    for (const auto& sub : f.fields) {
      fields.push_back(Json{{sub.name, fieldToJson(sub)}});
    }
    j["fields"] = std::move(fields);
  }
  if (f.type == FieldType::kForeign) {
    j["reference"] = f.reference;
    if (f.on_delete_cascade) j["on_delete"] = "cascade";
  }
  return j;
}

Json schemaToJson(const EntitySchema& schema) {
  Json fields = Json::array();
  for (const auto& f : schema.fields) {
    fields.push_back(Json{{f.name, fieldToJson(f)}});
  }
  Json checks = Json::array();
  for (const auto& c : schema.checks) {
    switch (c.kind) {
      case EntityCheck::Kind::kAtLeastOneOf:
        checks.push_back(Json{{"at_least_one_of", c.fields}});
        break;
      case EntityCheck::Kind::kMutuallyRequired:
        checks.push_back(Json{{"mutually_required", c.fields}});
        break;
      case EntityCheck::Kind::kMutuallyExclusive:
        checks.push_back(Json{{"mutually_exclusive", c.fields}});
        break;
      case EntityCheck::Kind::kConditional:
        checks.push_back(Json{
            {"conditional",
             {{"if_field", c.if_field},
              {"if_match", {{c.if_not_one_of ? "not_one_of" : "one_of", c.if_one_of}}},
              {"then_field", c.then_field},
              {"then_match", c.then_null ? Json{{"eq", nullptr}} : Json{{"required", true}}}}}});
        break;
      case EntityCheck::Kind::kCustom:
      case EntityCheck::Kind::kCustomFields:
        checks.push_back(Json{{"custom_entity_check", {{"field_sources", c.fields}}}});
        break;
    }
  }
  Json out{{"fields", std::move(fields)}};
  if (!checks.empty()) {
    out["entity_checks"] = std::move(checks);
  }
  return out;
}

namespace {

// Splits "paths.1" into ["paths", "1"].
std::vector<std::string> splitErrorPath(const std::string& field) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = field.find('.', start);
    parts.push_back(field.substr(start, dot == std::string::npos ? std::string::npos
                                                                 : dot - start));
    if (dot == std::string::npos) {
      return parts;
    }
    start = dot + 1;
  }
}

bool isErrorIndex(const std::string& s) {
  return !s.empty() && s.size() < 7 && std::all_of(s.begin(), s.end(), ::isdigit) &&
         s != "0";
}

}  // namespace

Json fieldsObject(const FieldErrors& errors) {
  Json fields = Json::object();
  for (const auto& e : errors) {
    if (e.field == "@entity") {
      fields["@entity"].push_back(e.reason);
      continue;
    }
    const std::vector<std::string> parts = splitErrorPath(e.field);
    Json* node = &fields;
    bool conflict = false;
    for (size_t i = 0; i < parts.size() && !conflict; ++i) {
      const bool last = i + 1 == parts.size();
      if (isErrorIndex(parts[i]) && (node->is_array() || node->is_null())) {
        const size_t idx = std::stoul(parts[i]) - 1;
        if (node->is_null()) {
          *node = Json::array();
        }
        while (node->size() <= idx) {
          node->push_back(nullptr);
        }
        node = &(*node)[idx];
      } else if (node->is_object() || node->is_null()) {
        node = &(*node)[parts[i]];
      } else {
        conflict = true;  // e.g. "headers" already holds a message; keep the first one
        break;
      }
      if (last) {
        if (node->is_null()) {
          *node = e.reason;
        }
      }
    }
  }
  return fields;
}

std::string errorSummary(const FieldErrors& errors) {
  std::vector<const FieldError*> fields;
  std::string out;
  for (const FieldError& e : errors) {
    if (e.field == "@entity") {
      out += (out.empty() ? "" : "; ") + e.reason;
    } else {
      fields.push_back(&e);
    }
  }
  std::stable_sort(fields.begin(), fields.end(),
                   [](const FieldError* a, const FieldError* b) { return a->field < b->field; });
  for (const FieldError* e : fields) {
    out += (out.empty() ? "" : "; ") + e->field + ": " + e->reason;
  }
  return out;
}

std::string luaTable(const Json& object) {
  std::vector<std::string> keys;
  for (auto it = object.begin(); it != object.end(); ++it) {
    keys.push_back(it.key());
  }
  std::sort(keys.begin(), keys.end());
  std::string out = "{";
  for (size_t i = 0; i < keys.size(); ++i) {
    const Json& v = object[keys[i]];
    out += (i == 0 ? "" : ",") + keys[i] + "=";
    if (v.is_null()) {
      out += "null";
    } else if (v.is_string()) {
      out += "\"" + v.get<std::string>() + "\"";
    } else if (v.is_object()) {
      out += luaTable(v);
    } else {
      out += v.dump();
    }
  }
  return out + "}";
}

std::string randomHex32() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    std::abort();  // no entropy: refuse to mint guessable credentials
  }
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

}  // namespace portico::config
