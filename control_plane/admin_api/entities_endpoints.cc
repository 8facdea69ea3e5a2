// Kong's entity endpoints (kong/api/endpoints.lua's generated CRUD, per control plane):
// /<collection>[/{key}], the nested /<parent>/{key}/<child>[/{key}], the foreign-key
// /<child>/{key}/<parent field>, /tags[/{tag}] and /config; Kong's paging, tag filters,
// error bodies and links.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "common/config/entities.h"
#include "common/logging.h"
#include "control_plane/admin_api/admin_util.h"
#include "control_plane/admin_api/config_endpoint.h"
#include "control_plane/admin_api/endpoints.h"

namespace portico::cp::admin {
namespace entities {
namespace {

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;

// Kong-style opaque offset: base64 of a JSON array holding the last primary key.
std::string encodeOffset(const std::string& last_id) {
  return base64Encode(Json::array({last_id}).dump());
}

struct PageRequest {
  int size = kDefaultPageSize;
  bool size_given = false;
  std::string after_id;
};

// Parses ?size= and ?offset= as Kong does; an error response if they are invalid.
std::optional<ApiResponse> parsePage(const ParsedTarget& t, PageRequest* page) {
  if (auto it = t.query.find("size"); it != t.query.end()) {
    page->size_given = true;
    char* end = nullptr;
    const double v = std::strtod(it->second.c_str(), &end);
    if (it->second.empty() || end == nullptr || *end != '\0') {
      return kongError(kInvalidSize, "invalid size", "size must be a number");
    }
    if (v < 1 || v > kMaxPageSize || v != static_cast<int>(v)) {
      return kongError(kInvalidSize, "invalid size",
                       "size must be an integer between 1 and " + std::to_string(kMaxPageSize));
    }
    page->size = static_cast<int>(v);
  }
  if (auto it = t.query.find("offset"); it != t.query.end()) {
    const std::optional<std::string> raw = base64Decode(it->second);
    if (!raw) {
      return kongError(kInvalidOffset, "invalid offset",
                       "'" + it->second + "' is not a valid offset: bad base64 encoding");
    }
    const Json parsed = Json::parse(*raw, nullptr, false);
    if (!parsed.is_array() || parsed.size() != 1 || !parsed[0].is_string() ||
        !config::isUuid(parsed[0].get<std::string>())) {
      return kongError(kInvalidOffset, "invalid offset",
                       "'" + it->second + "' is not a valid offset: bad json encoding");
    }
    page->after_id = parsed[0].get<std::string>();
  }
  return std::nullopt;
}

constexpr int kMaxTags = 5;  // in one ?tags= filter

struct Collection {
  const char* path;
  const char* type;
};
// Top-level collections (Kong's Admin API names); `targets` only exist under an upstream.
const Collection kCollections[] = {
    {"services", "services"},         {"routes", "routes"},
    {"consumers", "consumers"},       {"plugins", "plugins"},
    {"upstreams", "upstreams"},       {"certificates", "certificates"},
    {"snis", "snis"},                 {"ca_certificates", "ca_certificates"},
    {"key-auths", "keyauth_credentials"}, {"basic-auths", "basicauth_credentials"},
    {"jwts", "jwt_secrets"},          {"hmac-auths", "hmacauth_credentials"},
    {"acls", "acls"}};

struct Nested {
  const char* parent;   // parent entity type
  const char* segment;  // /<parent>/{p}/<segment>
  const char* type;     // child entity type
  const char* field;    // child's foreign field naming the parent
};
const Nested kNested[] = {
    {"services", "routes", "routes", "service"},
    {"services", "plugins", "plugins", "service"},
    {"routes", "plugins", "plugins", "route"},
    {"consumers", "plugins", "plugins", "consumer"},
    {"consumers", "key-auth", "keyauth_credentials", "consumer"},
    {"consumers", "basic-auth", "basicauth_credentials", "consumer"},
    {"consumers", "jwt", "jwt_secrets", "consumer"},
    {"consumers", "hmac-auth", "hmacauth_credentials", "consumer"},
    {"consumers", "acls", "acls", "consumer"},
    {"upstreams", "targets", "targets", "upstream"},
    {"certificates", "snis", "snis", "certificate"}};

// The owner of a nested request: /<parent>/{key}/<child>.
struct Owner {
  std::string field;  // the child's foreign field ("consumer")
  std::string id;     // the parent's id
  std::string base;   // "/consumers/bob/key-auth", for `next`
};

// Parses the body of the JSON message a store conflict status carries.
Json conflictDetail(const absl::Status& st) {
  Json j = Json::parse(std::string(st.message()), nullptr, false);
  return j.is_discarded() ? Json::object() : j;
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

class EntityHandler {
 public:
  // `prefix` is prepended to the links this handler builds ("/control-planes/{id}" for a
  // group other than `default`, else empty).
  EntityHandler(PgConfigStore& store, std::string group, std::string prefix)
      : store_(store), group_(std::move(group)), prefix_(std::move(prefix)) {}

  // Translates a store error into Kong's error bodies.
  ApiResponse storeError(const absl::Status& st, const std::string& type) {
    if (absl::IsAlreadyExists(st)) {
      const Json d = conflictDetail(st);
      if (d.contains("unique")) {
        return kongError(kUniqueViolation, "unique constraint violation",
                         "UNIQUE violation detected on '" + config::luaTable(d["unique"]) + "'",
                         d["unique"]);
      }
      const std::string id = d.value("primary_key", "");
      return kongError(kPrimaryKeyViolation, "primary key violation",
                       "primary key violation on key '{id=" + quoted(id) + "}'", Json{{"id", id}});
    }
    if (absl::IsFailedPrecondition(st)) {
      const Json d = conflictDetail(st);
      if (d.contains("referenced_by")) {
        const std::string by = d["referenced_by"];
        return kongError(kForeignKeyViolation, "foreign key violation",
                         "an existing '" + by + "' entity references this '" + type + "' entity",
                         Json{{"@referenced_by", by}});
      }
      const std::string id = d.value("id", "");
      return kongError(kForeignKeyViolation, "foreign key violation",
                       "the foreign key '{id=" + quoted(id) + "}' does not reference an existing '" +
                           d.value("reference", "") + "' entity.",
                       Json{{d.value("foreign_key", ""), {{"id", id}}}});
    }
    return statusResponse(st);
  }

  // Adds what Kong returns beside the stored JSON (a certificate's SNI names).
  Json decorate(const std::string& type, Json entity) {
    if (type == "certificates" && entity.contains("id")) {
      ListQuery q;
      q.size = 1000;
      q.foreign_field = "certificate";
      q.foreign_id = entity["id"].get<std::string>();
      Json names = Json::array();
      if (auto page = store_.listJson(group_, "snis", q); page.ok()) {
        for (const auto& sni : page->items) {
          names.push_back(sni["name"]);
        }
      }
      std::sort(names.begin(), names.end());
      entity["snis"] = std::move(names);
    }
    return entity;
  }

  // Resolves the parent of a nested request; a response if it does not exist.
  std::optional<ApiResponse> owner(const Nested& n, const std::string& parent_key, Owner* out) {
    auto parent = store_.getJson(group_, n.parent, parent_key);
    if (!parent.ok()) {
      return statusResponse(parent.status());
    }
    out->field = n.field;
    out->id = (*parent)["id"].get<std::string>();
    out->base = prefix_ + "/" + pathFor(n.parent) + "/" + uriEscape(parent_key) + "/" + n.segment;
    return std::nullopt;
  }

  static const char* pathFor(const std::string& type) {
    for (const auto& c : kCollections) {
      if (type == c.type) {
        return c.path;
      }
    }
    return type == "targets" ? "targets" : "";
  }

  ApiResponse list(const std::string& type, const ParsedTarget& t, const Owner* o) {
    PageRequest page;
    if (auto err = parsePage(t, &page)) {
      return *err;
    }
    ListQuery q;
    q.size = page.size;
    q.after_id = page.after_id;
    std::string tags_param;
    if (o != nullptr) {
      q.foreign_field = o->field;
      q.foreign_id = o->id;
    } else if (auto it = t.query.find("tags"); it != t.query.end()) {
      tags_param = it->second;
      const bool has_and = tags_param.find(',') != std::string::npos;
      const bool has_or = tags_param.find('/') != std::string::npos;
      if (tags_param.empty()) {
        Json body{{"code", kInvalidOptions},
                  {"name", "invalid options"},
                  {"message", "invalid option (tags: cannot be null)"},
                  {"options", {{"tags", "cannot be null"}}}};
        return json(400, body);
      }
      if (has_and && has_or) {
        Json body{{"code", kInvalidOptions},
                  {"name", "invalid options"},
                  {"message", "invalid option (tags: invalid filter syntax)"},
                  {"options", {{"tags", "invalid filter syntax"}}}};
        return json(400, body);
      }
      q.tags_or = has_or;
      std::string cur;
      for (char c : tags_param + (has_or ? "/" : ",")) {
        if (c == ',' || c == '/') {
          q.tags.push_back(cur);
          cur.clear();
        } else {
          cur.push_back(c);
        }
      }
      if (q.tags.size() > kMaxTags) {
        Json body{{"code", kInvalidOptions},
                  {"name", "invalid options"},
                  {"message", "invalid option (tags: cannot query more than 5 tags)"},
                  {"options", {{"tags", "cannot query more than 5 tags"}}}};
        return json(400, body);
      }
    }
    if (type == "consumers" && o == nullptr) {
      if (auto it = t.query.find("custom_id"); it != t.query.end()) {
        if (it->second.empty()) {
          return message(400, "custom_id must be an unempty string");
        }
        q.equals_field = "custom_id";
        q.equals_value = it->second;
      }
    }
    // Entities Kong returns exactly as stored are copied as JSON text, not parsed and dumped
    // again (measured: a 1,000-route page went from ~60 ms to a few ms of CP work).
    q.raw = type != "certificates";
    auto result = store_.listJson(group_, type, q);
    if (!result.ok()) {
      return statusResponse(result.status());
    }
    Json data = Json::array();
    for (auto& item : result->items) {
      data.push_back(decorate(type, std::move(item)));
    }
    Json body{{"data", q.raw ? Json::array() : std::move(data)}};
    if (result->next_after_id) {
      const std::string offset = encodeOffset(*result->next_after_id);
      body["offset"] = offset;
      std::string next = (o != nullptr ? o->base : prefix_ + "/" + pathFor(type)) +
                         "?offset=" + uriEscape(offset);
      if (o == nullptr && !tags_param.empty()) {
        next += "&tags=" + uriEscape(tags_param);
      }
      if (o == nullptr && page.size_given) {
        next += "&size=" + std::to_string(page.size);
      }
      body["next"] = next;
    } else {
      body["next"] = nullptr;
    }
    if (!q.raw) {
      return json(200, body);
    }
    // {"data":[],...} -> {"data":[<raw>,<raw>],...}: "data" sorts first in the dump.
    std::string out = body.dump();
    const std::string empty = R"({"data":[])";
    std::string joined;
    size_t total = 0;
    for (const auto& item : result->raw_items) {
      total += item.size() + 1;
    }
    joined.reserve(total + out.size());
    joined += R"({"data":[)";
    for (size_t i = 0; i < result->raw_items.size(); ++i) {
      if (i > 0) {
        joined += ',';
      }
      joined += result->raw_items[i];
    }
    joined += ']';
    joined.append(out, empty.size(), std::string::npos);
    return {200, std::move(joined)};
  }

  ApiResponse get(const std::string& type, const std::string& key, const Owner* o) {
    auto e = o != nullptr ? store_.getJson(group_, type, key, o->field, o->id)
                          : store_.getJson(group_, type, key);
    if (!e.ok()) {
      return statusResponse(e.status());
    }
    return json(200, decorate(type, std::move(*e)));
  }

  // Resolves foreign keys given by endpoint key ({"name": "x"}) to {"id"}; code 13 if absent.
  std::optional<ApiResponse> resolveForeign(const config::EntitySchema& schema, Json& input) {
    if (!input.is_object()) {
      return std::nullopt;
    }
    for (const config::Field* fk : schema.foreignFields()) {
      auto it = input.find(fk->name);
      if (it == input.end() || !it->is_object() || it->contains("id")) {
        continue;
      }
      const config::EntitySchema* ref = config::findEntitySchema(fk->reference);
      if (ref == nullptr || ref->endpoint_key.empty() || !it->contains(ref->endpoint_key) ||
          !(*it)[ref->endpoint_key].is_string()) {
        continue;
      }
      const std::string value = (*it)[ref->endpoint_key];
      auto found = store_.getJson(group_, fk->reference, value);
      if (absl::IsNotFound(found.status()) || (found.ok() && config::isUuid(value))) {
        const std::string reason = "the foreign key cannot be resolved with '{" +
                                   ref->endpoint_key + "=" + quoted(value) +
                                   "}' for an existing '" + fk->reference + "' entity";
        return kongError(kForeignKeysUnresolved, "foreign keys unresolved",
                         "foreign key unresolved (" + fk->name + "." + ref->endpoint_key + ": " +
                             reason + ")",
                         Json{{fk->name, {{ref->endpoint_key, reason}}}});
      }
      if (!found.ok()) {
        return statusResponse(found.status());
      }
      *it = Json{{"id", (*found)["id"]}};
    }
    return std::nullopt;
  }

  static Json merge(Json current, const Json& patch, const std::string& type) {
    if (!patch.is_object()) {
      return patch;
    }
    // Shorthands first: a service's `url` overrides the stored protocol/host/port/path.
    const config::EntitySchema* schema = config::findEntitySchema(type);
    const Json expanded = schema != nullptr ? config::expandShorthands(*schema, patch) : patch;
    for (auto it = expanded.begin(); it != expanded.end(); ++it) {
      Json& slot = current[it.key()];
      // Records merge field by field, as Kong's PATCH does for a plugin's config.
      if ((it.key() == "config" || it.key() == "healthchecks") && slot.is_object() &&
          it->is_object()) {
        slot = merge(slot, *it, "");
      } else {
        slot = *it;
      }
    }
    return current;
  }

  // POST (key empty), PUT (upsert) and PATCH (merge).
  ApiResponse write(const std::string& type, const std::string& method, const std::string& key,
                    const Body& body, const Owner* o) {
    const config::EntitySchema* schema = config::findEntitySchema(type);
    if (schema == nullptr) {
      return message(404, kNotFound);
    }
    Json input = body.kind == BodyKind::kForm ? config::coerceFormValues(type, body.value)
                                              : body.value;
    const Json request_body = input;
    std::optional<Json> existing;
    if (!key.empty()) {
      auto found = o != nullptr ? store_.getJson(group_, type, key, o->field, o->id)
                                : store_.getJson(group_, type, key);
      if (found.ok()) {
        existing = std::move(*found);
      } else if (!absl::IsNotFound(found.status())) {
        return statusResponse(found.status());
      } else if (method == "PATCH") {
        return message(404, kNotFound);
      } else if (o != nullptr && config::isUuid(key) && store_.getJson(group_, type, key).ok()) {
        return message(404, kNotFound);  // exists, but belongs to another parent
      }
    }
    if (method == "PATCH") {
      existing->erase("snis");
      input = merge(*existing, input, type);
    } else if (method == "PUT" && input.is_object()) {
      input.erase("id");
      input.erase("created_at");
      input.erase("updated_at");
      if (!config::isUuid(key) && !schema->endpoint_key.empty() && type != "certificates") {
        input[schema->endpoint_key] = key;
      }
    }
    if (o != nullptr && input.is_object()) {
      input[o->field] = Json{{"id", o->id}};
    }
    if (auto err = resolveForeign(*schema, input)) {
      return *err;
    }
    Json entity;
    if (auto err = processEntity(type, input, &entity)) {
      return *err;
    }
    if (existing) {
      entity["id"] = (*existing)["id"];
    } else if (method == "PUT" && config::isUuid(key)) {
      entity["id"] = key;
    } else if (!entity["id"].is_string()) {
      entity["id"] = newUuid();
    }
    if (type == "basicauth_credentials" && request_body.is_object() &&
        request_body.contains("password") && entity["password"].is_string()) {
      entity["password"] = config::basicAuthHash(entity["password"].get<std::string>(),
                                                 entity["consumer"]["id"].get<std::string>());
    }
    std::optional<ChildReplace> children;
    if (type == "certificates" && input.is_object() && input.contains("snis") &&
        input["snis"].is_array()) {
      children = ChildReplace{"snis", "certificate", {}};
      for (const auto& name : input["snis"]) {
        Json sni;
        config::FieldErrors sni_errors = config::processEntityJson(
            "snis", Json{{"name", name}, {"certificate", {{"id", entity["id"]}}}}, &sni);
        if (!sni_errors.empty()) {
          return schemaViolation(sni_errors);
        }
        sni["id"] = newUuid();
        children->entities.push_back(std::move(sni));
      }
    }
    const WriteMode mode = method == "POST"  ? WriteMode::kCreate
                           : method == "PUT" ? WriteMode::kUpsert
                                             : WriteMode::kUpdate;
    const std::string id = entity["id"].get<std::string>();
    // A POST naming its own id may be the replay of one whose answer was lost (or unknown):
    // keep what it asked for, to recognise it below.
    const bool client_id =
        method == "POST" && request_body.is_object() && request_body.contains("id");
    std::optional<Json> asked;
    if (client_id) {
      asked = entity;
    }
    auto written = store_.writeJson(group_, type, std::move(entity), mode, children);
    if (!written.ok()) {
      if (isCommitOutcomeUnknown(written.status())) {
        return outcomeUnknown(written.status(), method, entityPath(type, id, o), id);
      }
      if (asked && absl::IsAlreadyExists(written.status()) &&
          conflictDetail(written.status()).contains("primary_key")) {
        if (auto replay = replayedCreate(type, *asked, children)) {
          return *replay;
        }
      }
      return storeError(written.status(), type);
    }
    return json(method == "POST" ? 201 : 200, decorate(type, std::move(written->entity)));
  }

  // The Admin path of one entity, for messages: nested entities under their owner's path.
  std::string entityPath(const std::string& type, const std::string& id, const Owner* o) const {
    return (o != nullptr ? o->base : prefix_ + "/" + pathFor(type)) + "/" + id;
  }

  // A write whose COMMIT got no answer and whose outcome the store could not learn: not
  // "retry later" (a blind retry of a create could write it twice), but how to find out.
  // docs/design.md, "Commit uncertainty".
  static ApiResponse outcomeUnknown(const absl::Status& st, const std::string& method,
                                    const std::string& path, const std::string& id) {
    LOG_ERROR("admin", "%s %s: %s", method, path, st.message());
    std::string how;
    if (method == "POST") {
      how = "Check with GET " + path + " before retrying; sending the same body with PUT " +
            path + " (or this POST with \"id\": \"" + id +
            "\" in the body) completes it safely either way";
    } else if (method == "DELETE") {
      how = "Check with GET " + path + "; repeating this DELETE is safe";
    } else {
      how = "Check with GET " + path + "; repeating this " + method + " is safe";
    }
    return json(503, Json{{"message", "The database connection was lost while committing this "
                                      "write, and whether it was applied is unknown. " +
                                          how + "."},
                          {"outcome", "unknown"},
                          {"id", id},
                          {"path", path}});
  }

  // A POST with a client-chosen id that is already taken by exactly the entity it asks for
  // (timestamps aside): the replay of a create that committed, answered as the create was.
  std::optional<ApiResponse> replayedCreate(const std::string& type, Json asked,
                                            const std::optional<ChildReplace>& children) {
    auto stored = store_.getJson(group_, type, asked["id"].get<std::string>());
    if (!stored.ok()) {
      return std::nullopt;
    }
    Json current = decorate(type, *stored);
    if (type == "certificates") {
      Json names = Json::array();
      if (children) {
        for (const auto& sni : children->entities) {
          names.push_back(sni["name"]);
        }
      }
      std::sort(names.begin(), names.end());
      asked["snis"] = std::move(names);
    }
    Json compared = current;
    for (const char* f : {"created_at", "updated_at"}) {
      compared.erase(f);
      asked.erase(f);
    }
    if (compared != asked) {
      return std::nullopt;
    }
    return json(201, current);
  }

  ApiResponse remove(const std::string& type, const std::string& key, const Owner* o) {
    auto found = o != nullptr ? store_.getJson(group_, type, key, o->field, o->id)
                              : store_.getJson(group_, type, key);
    if (absl::IsNotFound(found.status())) {
      return o != nullptr ? message(404, kNotFound) : ApiResponse{204, ""};
    }
    if (!found.ok()) {
      return statusResponse(found.status());
    }
    const std::string id = (*found)["id"].get<std::string>();
    auto deleted = store_.deleteJson(group_, type, id);
    if (!deleted.ok()) {
      if (isCommitOutcomeUnknown(deleted.status())) {
        return outcomeUnknown(deleted.status(), "DELETE", entityPath(type, id, o), id);
      }
      return storeError(deleted.status(), type);
    }
    return {204, ""};
  }

  // /<type>/{key}/<field>: the entity a foreign key points at (GET, PUT, PATCH).
  ApiResponse parentOf(const std::string& type, const std::string& key, const config::Field& fk,
                       const std::string& method, const Body& body) {
    auto child = store_.getJson(group_, type, key);
    if (!child.ok()) {
      return statusResponse(child.status());
    }
    const Json& ref = (*child)[fk.name];
    if (!ref.is_object() || !ref.contains("id")) {
      return message(404, kNotFound);
    }
    const std::string parent_id = ref["id"];
    if (method == "GET") {
      return get(fk.reference, parent_id, nullptr);
    }
    return write(fk.reference, method, parent_id, body, nullptr);
  }

  // GET /tags and /tags/{tag}: offsets are positions (base64 of [n]).
  ApiResponse tags(const ParsedTarget& t, const std::string& tag) {
    PageRequest page;
    int64_t offset = 0;
    ParsedTarget without_offset = t;
    without_offset.query.erase("offset");
    if (auto err = parsePage(without_offset, &page)) {
      return *err;
    }
    if (auto it = t.query.find("offset"); it != t.query.end()) {
      const std::optional<std::string> raw = base64Decode(it->second);
      const Json parsed = raw ? Json::parse(*raw, nullptr, false) : Json();
      if (!parsed.is_array() || parsed.size() != 1 || !parsed[0].is_number_integer()) {
        return kongError(kInvalidOffset, "invalid offset",
                         "'" + it->second + "' is not a valid offset");
      }
      offset = parsed[0].get<int64_t>();
    }
    auto rows = store_.listTags(group_, tag, offset, page.size + 1);
    if (!rows.ok()) {
      return statusResponse(rows.status());
    }
    const bool more = static_cast<int>(rows->size()) > page.size;
    if (more) {
      rows->pop_back();
    }
    Json body{{"data", *rows}};
    if (more) {
      const std::string next_offset = base64Encode(Json::array({offset + page.size}).dump());
      body["offset"] = next_offset;
      body["next"] = prefix_ + (tag.empty() ? std::string("/tags") : "/tags/" + uriEscape(tag)) +
                     "?offset=" + uriEscape(next_offset) +
                     (page.size_given ? "&size=" + std::to_string(page.size) : "");
    } else {
      body["next"] = nullptr;
    }
    if (body["data"].empty()) {
      body["data"] = Json::array();
    }
    return json(200, body);
  }

 private:
  PgConfigStore& store_;
  const std::string group_;
  const std::string prefix_;
};

ParsedTarget targetOf(const EndpointCall& call) { return {call.segments, call.query}; }

// /<collection> and /<parent>/{key}/<child> (`o` set): list or create.
ApiResponse collectionAnswer(EntityHandler& h, const std::string& type, const EndpointCall& call,
                             const Owner* o) {
  if (call.method() == "GET") {
    return h.list(type, targetOf(call), o);
  }
  if (call.method() == "POST") {
    const Body body = readBody(call.request);
    if (auto err = bodyError(body)) {
      return *err;
    }
    return h.write(type, "POST", "", body, o);
  }
  return message(405, kMethodNotAllowed);
}

// /<collection>/{key} and /<parent>/{key}/<child>/{key} (`o` set).
ApiResponse itemAnswer(EntityHandler& h, const std::string& type, const std::string& key,
                       const EndpointCall& call, const Owner* o) {
  const std::string& m = call.method();
  if (m == "GET") {
    return h.get(type, key, o);
  }
  if (m == "DELETE") {
    return h.remove(type, key, o);
  }
  if (m == "PUT" || m == "PATCH") {
    const Body body = readBody(call.request);
    if (auto err = bodyError(body)) {
      return *err;
    }
    return h.write(type, m, key, body, o);
  }
  return message(405, kMethodNotAllowed);
}

void addCollection(EndpointTable& table, PgConfigStore& store, const Collection& c) {
  const std::string path = c.path;
  const std::string type = c.type;
  table.add(kGet | kPost, path, [&store, type](const EndpointCall& call) {
    EntityHandler h(store, call.group, call.prefix);
    return collectionAnswer(h, type, call, nullptr);
  });
  table.add(kGet | kPut | kPatch | kDelete, path + "/{key}",
            [&store, type](const EndpointCall& call) {
              EntityHandler h(store, call.group, call.prefix);
              return itemAnswer(h, type, call.params[0], call, nullptr);
            });
  // Nested paths before foreign-key paths, the order they have always been matched in. The
  // parent is looked up before the method is checked: a missing parent has always been 404.
  for (const Nested& n : kNested) {
    if (type != n.parent) {
      continue;
    }
    const std::string nested = path + "/{key}/" + n.segment;
    table.add(
        kGet | kPost, nested,
        [&store, &n](const EndpointCall& call) {
          EntityHandler h(store, call.group, call.prefix);
          Owner o;
          if (auto err = h.owner(n, call.params[0], &o)) {
            return *err;
          }
          return collectionAnswer(h, n.type, call, &o);
        },
        Scope::kAnyGroup, MethodCheck::kHandler);
    table.add(
        kGet | kPut | kPatch | kDelete, nested + "/{child}",
        [&store, &n](const EndpointCall& call) {
          EntityHandler h(store, call.group, call.prefix);
          Owner o;
          if (auto err = h.owner(n, call.params[0], &o)) {
            return *err;
          }
          return itemAnswer(h, n.type, call.params[1], call, &o);
        },
        Scope::kAnyGroup, MethodCheck::kHandler);
  }
  // /<child>/{key}/<foreign field>: the entity the key points at (GET, PUT, PATCH).
  const config::EntitySchema* schema = config::findEntitySchema(type);
  if (schema == nullptr) {
    return;
  }
  // The schemas are static: their fields outlive the table.
  for (const config::Field* fk : schema->foreignFields()) {
    table.add(kGet | kPut | kPatch, path + "/{key}/" + fk->name,
              [&store, type, fk](const EndpointCall& call) {
                EntityHandler h(store, call.group, call.prefix);
                Body body;
                if (call.method() != "GET") {
                  body = readBody(call.request);
                  if (auto err = bodyError(body)) {
                    return *err;
                  }
                }
                return h.parentOf(type, call.params[0], *fk, call.method(), body);
              });
  }
}

}  // namespace
}  // namespace entities

void addEntitiesEndpoints(EndpointTable& table, const EndpointDeps& deps) {
  using entities::EntityHandler;
  PgConfigStore& store = deps.store;
  // Reads its own body: the file may be YAML, a form or multipart, and large.
  table.add(kGet | kPost, "config", [&store](const EndpointCall& call) {
    return handleConfigEndpoint(store, call.request, call.query, call.group, statusResponse);
  });
  table.add(kGet, "tags", [&store](const EndpointCall& call) {
    return EntityHandler(store, call.group, call.prefix).tags(entities::targetOf(call), "");
  });
  table.add(kGet, "tags/{tag}", [&store](const EndpointCall& call) {
    return EntityHandler(store, call.group, call.prefix)
        .tags(entities::targetOf(call), call.params[0]);
  });
  for (const entities::Collection& c : entities::kCollections) {
    entities::addCollection(table, store, c);
  }
}

}  // namespace portico::cp::admin
