// A small declarative entity schema engine after Kong's (kong/db/schema): one description per
// entity drives JSON type checking (Kong's "expected a string" messages), defaults, field
// constraints, entity checks, the Admin API's error `fields` shape, the normalized JSON an
// entity is stored and returned as (every field present, unset = null) and GET /schemas.
// The same description validates on the CP (Admin API writes) and the DP (snapshot apply).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace re2 {
class RE2;
}  // namespace re2

namespace portico::config {

using Json = nlohmann::json;

// One rejected field. `field` is a Kong-style path ("host", "paths.1", "service.id"; 1-based
// array indexes as in Kong's messages) or "@entity" for entity-level checks; `reason` is
// Kong's message text ("must not have a port").
struct FieldError {
  std::string entity_type;  // "services", "routes", ...
  std::string entity_id;
  std::string field;
  std::string reason;

  bool operator==(const FieldError&) const = default;
};
using FieldErrors = std::vector<FieldError>;

enum class FieldType {
  kString,
  kInteger,
  kNumber,
  kBoolean,
  kArray,
  kSet,
  kMap,
  kRecord,
  kForeign,
  kJson
};

// A field-level custom validator: returns Kong's reason text, empty when valid. It may
// normalize the value in place (e.g. a target's default port).
using CustomValidator = std::function<std::string(Json& value)>;
// A default computed from the rest of the input record (Kong's subschema defaults: a gRPC
// route's strip_path is false).
using DefaultFunction = std::function<Json(const Json& input)>;

// One field of an entity or record. Built with the fluent helpers below:
//   Field::string("username").unique()
struct Field {
  std::string name;
  FieldType type = FieldType::kString;
  bool required = false;
  std::optional<Json> default_value;
  bool auto_value = false;     // id/created_at/updated_at: filled by the CP
  bool auto_random = false;    // a random 32-hex string when absent (credential keys)
  bool uuid = false;
  bool unique = false;
  bool must_be_null = false;   // Kong's `eq = null` (e.g. typedefs.no_consumer)
  bool transient = false;      // accepted on input, not part of the stored entity
  std::vector<Json> one_of;
  std::optional<std::pair<double, double>> between;
  std::optional<int64_t> len_min;  // strings default to 1 (Kong), arrays to none
  std::optional<int64_t> len_max;
  std::string match;           // RE2, full match; failure: "invalid value: <v>"
  std::shared_ptr<const re2::RE2> match_re;  // `match` compiled once, by matches()
  CustomValidator custom;
  DefaultFunction default_from;  // overrides default_value when the field is absent
  bool null_as_default = false;  // an explicit null takes the default (not required, not null)
  bool empty_as_null = false;    // an empty array, set or map is stored as null
  bool wrap_scalar = false;      // array/set: a lone string is a one-element array
  bool keyed_value_errors = false;  // map: value errors at "<map>.<key>", not at "<map>"
  std::shared_ptr<const Field> elements;  // array/set elements, map values
  std::shared_ptr<const Field> keys;      // map keys
  std::vector<Field> fields;              // record fields
  std::string reference;                  // foreign: referenced entity ("consumers")
  bool on_delete_cascade = false;         // foreign: deleting the parent deletes this entity

  static Field make(std::string name, FieldType type);
  static Field string(std::string name) { return make(std::move(name), FieldType::kString); }
  static Field integer(std::string name) { return make(std::move(name), FieldType::kInteger); }
  static Field number(std::string name) { return make(std::move(name), FieldType::kNumber); }
  static Field boolean(std::string name) { return make(std::move(name), FieldType::kBoolean); }
  static Field array(std::string name, Field elements);
  static Field set(std::string name, Field elements);
  static Field map(std::string name, Field keys, Field values);
  static Field record(std::string name, std::vector<Field> fields);
  static Field foreign(std::string name, std::string reference);
  static Field json(std::string name) { return make(std::move(name), FieldType::kJson); }

  Field req() const;
  Field def(Json value) const;
  Field oneOf(std::vector<Json> values) const;
  Field range(double lo, double hi) const;
  Field lenMin(int64_t n) const;
  Field lenMax(int64_t n) const;
  Field matches(std::string re) const;
  Field validator(CustomValidator fn) const;
  Field isUnique() const;
  Field cascade() const;
  Field isNull() const;
  Field autoRandom() const;
  Field isTransient() const;
  Field defaultFrom(DefaultFunction fn) const;
  Field nullAsDefault() const;
  Field emptyAsNull() const;
  Field wrapScalar() const;
  Field keyedValueErrors() const;
};

// Field-level results of an entity check: (field, reason), "@entity" for the entity.
using FieldReasons = std::vector<std::pair<std::string, std::string>>;

// Kong's entity_checks. Each names the fields it reads; it is skipped when one of them
// already failed field validation.
struct EntityCheck {
  enum class Kind {
    kAtLeastOneOf,       // "at least one of these fields must be non-empty: 'a', 'b'"
    kMutuallyRequired,   // "all or none of these fields must be set: 'a', 'b'"
    kMutuallyExclusive,  // "only one or none of these fields must be set: 'a', 'b'"
    kConditional,        // if if_field is (not_) one of if_one_of then then_field must be
                         // set (or, then_null, must be null)
    kCustom,             // fn returns an @entity reason ("" = ok)
    kCustomFields        // field_fn returns reasons by field (Kong's custom_entity_check
                         // returning a field table); a field that already failed keeps its
                         // first error, as Kong keeps one error per field
  };
  Kind kind = Kind::kCustom;
  std::vector<std::string> fields;
  std::string if_field;
  std::vector<Json> if_one_of;
  bool if_not_one_of = false;  // if_match = { not_one_of = ... }
  std::string then_field;
  bool then_null = false;      // then_match = { eq = null }: "value must be null"
  std::function<std::string(const Json& entity)> fn;
  std::function<FieldReasons(const Json& entity)> field_fn;
};

// Kong's shorthand_fields: an input-only field (a service's `url`) that is type-checked as
// `field` and then expanded into the entity's own fields by `expand`.
struct Shorthand {
  Field field;
  std::function<void(const Json& value, Json* entity)> expand;
};

// A unique key: `fields` (sorted by name in messages) must be unique among entities that
// share the values of `scope` (e.g. a target is unique per upstream).
struct UniqueKey {
  std::vector<std::string> fields;
  std::vector<std::string> scope;
};

struct EntitySchema {
  std::string name;             // "consumers": table, collection and declarative key
  std::string endpoint_key;     // "username": the `{id or key}` alternative; may be empty
  std::string admin_path;       // collection path when different from name ("key-auths")
  std::vector<Field> fields;
  std::vector<EntityCheck> checks;
  std::vector<Shorthand> shorthands;
  std::vector<UniqueKey> unique_keys;  // besides single `unique` fields
  bool float_timestamps = false;       // targets: created_at/updated_at in float seconds

  const Field* field(const std::string& name) const;
  // Foreign fields, in declaration order.
  std::vector<const Field*> foreignFields() const;
  // Every unique key, single-field ones included.
  std::vector<UniqueKey> allUniqueKeys() const;
};

struct ProcessOptions {
  // Form-encoded bodies carry every value as a string: coerce to the field's type.
  bool coerce_strings = false;
};

// Type-checks, fills defaults and validates `input` against `schema`. `out` receives the
// normalized entity: every non-transient field present, unset ones null, sets
// de-duplicated, foreign keys as {"id": ...}. Errors carry Kong's field paths ("paths.1",
// "config.key_names.1", "@entity"). Foreign keys given by endpoint key must have been
// resolved to {"id"} by the caller (else "missing primary key").
FieldErrors processEntity(const EntitySchema& schema, const Json& input, Json* out,
                          const ProcessOptions& options = {});

// PATCH: `patch` with its shorthands expanded (a service's `url` becomes protocol, host, port
// and path, so it overrides the stored ones). A shorthand of the wrong type is left in place
// for processEntity to report.
Json expandShorthands(const EntitySchema& schema, const Json& patch);

// The `fields` tree of a list of errors, mirroring the input's shape: {"paths": [null,
// "reason"], "@entity": ["..."]} (1-based indexes in paths become array positions). Where two
// errors claim the same place the first is kept.
Json fieldsObject(const FieldErrors& errors);

// Kong's one-line summary of a list of errors: entity-level reasons first, then
// "field: reason" by field name, joined by "; " (a boundary wraps it: the Admin API's
// "N schema violations (...)", the declarative loader's per-entity messages).
std::string errorSummary(const FieldErrors& errors);

// Validates one record value against a record field (plugin configs). `path` prefixes error
// fields ("config").
FieldErrors processRecord(const Field& record, const Json& input, Json* out,
                          const std::string& path, const ProcessOptions& options = {});

// GET /schemas/{entity}: {"fields": [{"<name>": {"type": ..., ...}}, ...], "entity_checks": [...]}.
Json schemaToJson(const EntitySchema& schema);
Json fieldToJson(const Field& field);

// Lua-table rendering used in Kong's messages: {name="x",service={id="..."}} (keys sorted,
// JSON null as `null`).
std::string luaTable(const Json& object);

// A random 32-character lower-case hex string (Kong's utils.random_string).
std::string randomHex32();

}  // namespace portico::config
