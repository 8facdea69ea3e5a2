#include "control_plane/admin_api/admin_api.h"

#include <unistd.h>

#include <cstdio>
#include <optional>
#include <random>
#include <tuple>
#include <vector>

#include "common/config/entities.h"
#include "common/config/json_limits.h"
#include "common/config/kong_json.h"
#include "common/config/validate.h"
#include "common/flags.h"
#include "common/logging.h"
#include "control_plane/admin_api/config_endpoint.h"
#include "control_plane/admin_api/form.h"
#include "control_plane/fleet/fleet_endpoints.h"

namespace portico::cp {
namespace {

namespace v1 = config::v1;
using config::Json;

// Kong's error codes (kong/db/errors.lua) and their HTTP status.
enum KongError {
  kPrimaryKeyViolation = 3,
  kSchemaViolation = 2,
  kForeignKeyViolation = 4,
  kUniqueViolation = 5,
  kInvalidOffset = 7,
  kInvalidSize = 9,
  kForeignKeysUnresolved = 13,
};

// Fixed client-facing messages (rule 6): never raw text from the database layer.
constexpr char kNotFound[] = "Not found";
constexpr char kKongVersion[] = "3.10.0";
constexpr char kMethodNotAllowed[] = "Method not allowed";
constexpr char kCannotParseJson[] = "Cannot parse JSON body";
constexpr char kUnexpected[] = "An unexpected error occurred";
constexpr char kUnavailable[] =
    "The database is unavailable: cannot reach PostgreSQL; retry later";
constexpr char kInvalidCredentials[] = "Invalid credentials. Token or User credentials required";
constexpr char kDefaultGroup[] = "default";
constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;

ApiResponse json(int status, const Json& body) { return {status, body.dump()}; }
ApiResponse message(int status, const std::string& text) {
  return json(status, Json{{"message", text}});
}

ApiResponse kongError(int code, const std::string& name, const std::string& msg,
                      std::optional<Json> fields = std::nullopt) {
  Json body{{"code", code}, {"name", name}, {"message", msg}};
  if (fields) {
    body["fields"] = *fields;
  }
  const int status = code == kUniqueViolation ? 409 : code == 6 ? 404 : code == 8 ? 500 : 400;
  return json(status, body);
}

// Any status the handlers do not turn into a Kong-specific error.
ApiResponse statusResponse(const absl::Status& st) {
  const int http = toHttpStatus(st.code());
  if (http == 404) {
    return message(404, kNotFound);
  }
  if (http == 503) {
    LOG_WARN("admin", "%s", st.message());
    return message(503, kUnavailable);
  }
  LOG_ERROR("admin", "unexpected error: %s", st.ToString());
  return message(500, kUnexpected);
}

std::string newUuid() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const uint64_t a = rng(), b = rng();
  unsigned char bytes[16];
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<unsigned char>(a >> (8 * i));
    bytes[8 + i] = static_cast<unsigned char>(b >> (8 * i));
  }
  bytes[6] = (bytes[6] & 0x0F) | 0x40;  // version 4
  bytes[8] = (bytes[8] & 0x3F) | 0x80;  // RFC 4122 variant
  char out[37];
  std::snprintf(out, sizeof(out),
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", bytes[0],
                bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8],
                bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]);
  return out;
}

// As ngx.escape_uri: everything but unreserved characters is %XX-escaped.
std::string uriEscape(std::string_view in) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (char c : in) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64Encode(std::string_view in) {
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += {kB64[v >> 18], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63], kB64[v & 63]};
  }
  if (i + 1 == in.size()) {
    const uint32_t v = static_cast<unsigned char>(in[i]) << 16;
    out += {kB64[v >> 18], kB64[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const uint32_t v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {kB64[v >> 18], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63], '='};
  }
  return out;
}

std::optional<std::string> base64Decode(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) {
    return std::nullopt;
  }
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '=') {
      if (i + 2 < in.size()) {
        return std::nullopt;
      }
      break;
    }
    const char* p = std::strchr(kB64, in[i]);
    if (p == nullptr || *p == '\0') {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<uint32_t>(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

// Kong-style opaque offset: base64 of a JSON array holding the last primary key.
std::string encodeOffset(const std::string& last_id) {
  return base64Encode(Json::array({last_id}).dump());
}

struct ParsedTarget {
  std::vector<std::string> segments;  // URL-decoded path segments
  std::map<std::string, std::string> query;
};

ParsedTarget parseTarget(const std::string& target) {
  ParsedTarget out;
  const size_t q = target.find('?');
  const std::string path = target.substr(0, q);
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) {
      slash = path.size();
    }
    if (slash > start) {
      out.segments.push_back(urlDecode(std::string_view(path).substr(start, slash - start),
                                       false));
    }
    start = slash + 1;
  }
  if (q != std::string::npos) {
    const std::string qs = target.substr(q + 1);
    size_t pos = 0;
    while (pos <= qs.size()) {
      size_t amp = qs.find('&', pos);
      if (amp == std::string::npos) {
        amp = qs.size();
      }
      const std::string pair = qs.substr(pos, amp - pos);
      if (!pair.empty()) {
        const size_t eq = pair.find('=');
        out.query[urlDecode(pair.substr(0, eq), true)] =
            eq == std::string::npos ? "" : urlDecode(pair.substr(eq + 1), true);
      }
      pos = amp + 1;
    }
  }
  return out;
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

// The body as JSON; an empty body is an empty object.
// Deeper than config::kMaxJsonDepth is refused before parsing (*too_deep).
std::optional<Json> parseBody(const ApiRequest& req, bool* too_deep) {
  if (req.body.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Json::object();
  }
  return config::parseUntrustedJson(req.body, config::kMaxJsonDepth, too_deep);
}

// ---- request bodies ---------------------------------------------------------------------

// kRefused: parsed, but holding what no field may (NUL, invalid UTF-8): a schema violation.
enum class BodyKind { kJson, kForm, kUnsupported, kInvalid, kRefused };

struct Body {
  BodyKind kind = BodyKind::kJson;
  Json value = Json::object();
  bool too_deep = false;   // kInvalid because of config::kMaxJsonDepth
  std::string form_error;  // kInvalid form body: why
  config::FieldErrors refused;  // kRefused: the field and why
};

// Strings reach PostgreSQL as text or jsonb, and headers and hosts on the DP: none takes a
// NUL byte or invalid UTF-8, in a value or in a key, whatever the field.
void refuseBadText(Body* b) {
  if (std::optional<config::BadText> bad = config::findBadText(b->value)) {
    b->kind = BodyKind::kRefused;
    b->refused.push_back({"", "", bad->path, bad->reason});
  }
}

// The one message for a body that is not JSON we take.
std::string invalidBodyMessage(const Body& b) {
  if (!b.form_error.empty()) {
    return "Cannot parse form body: " + b.form_error;
  }
  return b.too_deep ? std::string(kCannotParseJson) + ": nested deeper than " +
                          std::to_string(config::kMaxJsonDepth) + " levels"
                    : std::string(kCannotParseJson);
}

Body readBody(const ApiRequest& req) {
  Body b;
  std::string ct = req.content_type;
  std::transform(ct.begin(), ct.end(), ct.begin(), ::tolower);
  if (ct.find("application/x-www-form-urlencoded") != std::string::npos) {
    b.kind = BodyKind::kForm;
    std::optional<Json> form = parseKongForm(req.body, &b.form_error);
    if (!form) {
      b.kind = BodyKind::kInvalid;
      return b;
    }
    b.value = std::move(*form);
    refuseBadText(&b);
    return b;
  }
  if (!ct.empty() && ct.find("application/json") == std::string::npos) {
    b.kind = BodyKind::kUnsupported;
    return b;
  }
  std::optional<Json> j = parseBody(req, &b.too_deep);
  if (!j) {
    b.kind = BodyKind::kInvalid;
    return b;
  }
  b.value = std::move(*j);
  refuseBadText(&b);
  return b;
}

// ---- the entity routes -------------------------------------------------------------------

constexpr int kInvalidOptions = 11;
constexpr int kMaxTags = 5;

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

const char* typeForPath(const std::string& path) {
  for (const auto& c : kCollections) {
    if (path == c.path) {
      return c.type;
    }
  }
  return nullptr;
}

const Nested* findNested(const std::string& parent, const std::string& segment) {
  for (const auto& n : kNested) {
    if (parent == n.parent && segment == n.segment) {
      return &n;
    }
  }
  return nullptr;
}

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

class Handler {
 public:
  // `prefix` is prepended to the links this handler builds ("/control-planes/{id}" for a
  // group other than `default`, else empty).
  Handler(PgConfigStore& store, std::string group, std::string prefix)
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
    if (type == "services" || type == "routes") {
      return config::mergePatch(std::move(current), patch, type == "services");
    }
    if (!patch.is_object()) {
      return patch;
    }
    for (auto it = patch.begin(); it != patch.end(); ++it) {
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
    config::FieldErrors errors = config::processEntityJson(type, input, &entity);
    if (errors.empty()) {
      errors = config::checkEntitySize(type, entity);
    }
    if (!errors.empty()) {
      return json(400, config::schemaViolationBody(errors));
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
          return json(400, config::schemaViolationBody(sni_errors));
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

// ---- control planes (Konnect's shape) --------------------------------------------------------

const char* reasonPhrase(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 409: return "Conflict";
    case 415: return "Unsupported Media Type";
    default: return "Error";
  }
}

// Konnect's error body; `field`/`rule` add one invalid_parameters entry.
ApiResponse konnectError(int status, const std::string& detail, const std::string& field = "",
                         const std::string& rule = "") {
  Json body{{"status", status}, {"title", reasonPhrase(status)}, {"detail", detail}};
  if (!field.empty()) {
    body["invalid_parameters"] =
        Json::array({Json{{"field", field}, {"rule", rule}, {"reason", detail}}});
  }
  return json(status, body);
}

Json groupJson(const GroupRecord& g) {
  return Json{{"id", g.id},
              {"name", g.name},
              {"description", g.description ? Json(*g.description) : Json()},
              {"labels", g.labels},
              {"created_at", g.created_at},
              {"updated_at", g.updated_at}};
}

constexpr size_t kMaxGroupName = 100;
constexpr size_t kMaxDescription = 250;
constexpr size_t kMaxLabels = 50;
constexpr size_t kMaxLabelLength = 63;

// Name: 1-100 printable characters, no '/', not a UUID (the path segment is an id or a name).
// Labels: up to 50 string values, keys and values of 1-63 characters (Konnect's limits).
std::optional<ApiResponse> validateGroupBody(const Json& b, bool create) {
  if (b.contains("name") || create) {
    const Json name = b.value("name", Json());
    if (!name.is_string()) {
      return konnectError(400, "name is a required string", "name", "required");
    }
    const std::string n = name.get<std::string>();
    const bool printable = std::all_of(n.begin(), n.end(), [](char c) {
      return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f && c != '/';
    });
    if (n.empty() || n.size() > kMaxGroupName || !printable || config::isUuid(n)) {
      return konnectError(400,
                          "name must be 1 to 100 printable characters without '/' and not a UUID",
                          "name", "is_valid");
    }
  }
  if (b.contains("description") && !b["description"].is_null()) {
    if (!b["description"].is_string() ||
        b["description"].get<std::string>().size() > kMaxDescription) {
      return konnectError(400, "description must be a string of at most 250 characters",
                          "description", "is_valid");
    }
  }
  if (b.contains("labels")) {
    const Json& l = b["labels"];
    bool ok = l.is_object() && l.size() <= kMaxLabels;
    for (auto it = l.begin(); ok && it != l.end(); ++it) {
      ok = !it.key().empty() && it.key().size() <= kMaxLabelLength && it->is_string() &&
           !it->get<std::string>().empty() && it->get<std::string>().size() <= kMaxLabelLength;
    }
    if (!ok) {
      return konnectError(400,
                          "labels must be an object of at most 50 string values, keys and values "
                          "of 1 to 63 characters",
                          "labels", "is_valid");
    }
  }
  return std::nullopt;
}

}  // namespace

namespace {
constexpr const char* kLatencyMethods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "other"};
}  // namespace

AdminLatency::AdminLatency() {
  for (size_t i = 0; i < kMethods * kClasses; ++i) {
    histograms_.push_back(
        std::make_unique<metrics::Histogram>(metrics::Histogram::secondsBounds()));
  }
}

void AdminLatency::observe(std::string_view method, int status, double seconds) {
  size_t m = kMethods - 1;
  for (size_t i = 0; i + 1 < kMethods; ++i) {
    if (method == kLatencyMethods[i]) m = i;
  }
  const size_t c = status >= 100 && status < 600 ? static_cast<size_t>(status / 100 - 1) : 4;
  histograms_[m * kClasses + c]->observe(seconds);
}

void AdminLatency::write(metrics::Writer& w) const {
  w.beginHistogram("portico_cp_admin_request_duration_seconds",
                   "Admin API requests, from read to response ready, by method and status "
                   "class.");
  for (size_t m = 0; m < kMethods; ++m) {
    for (size_t c = 0; c < kClasses; ++c) {
      const metrics::Histogram& h = *histograms_[m * kClasses + c];
      if (h.count() > 0) {
        h.write(w, {{"method", kLatencyMethods[m]}, {"status", std::to_string(c + 1) + "xx"}});
      }
    }
  }
}

int toHttpStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return 503;
    case absl::StatusCode::kUnimplemented:
      return 501;
    default:
      return 500;
  }
}

namespace {

std::string hostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) {
    return "localhost";
  }
  return buf;
}

}  // namespace

AdminApi::AdminApi(PgConfigStore& store, const ServerCounters& counters,
                   const AdminApiOptions& options)
    : store_(store), counters_(counters), options_(options), node_id_(newUuid()) {
  if (options_.require_auth) {
    auth_ = std::make_unique<AdminAuthenticator>(store_);
  }
}

std::optional<ApiResponse> AdminApi::checkToken(const std::string& m, const std::string& token) {
  if (auth_ == nullptr) {
    return std::nullopt;
  }
  if (token.empty()) {
    return message(401, kInvalidCredentials);
  }
  auto admin = auth_->authenticate(token);
  if (!admin.ok()) {
    return absl::IsUnauthenticated(admin.status()) ? message(401, kInvalidCredentials)
                                                   : statusResponse(admin.status());
  }
  if (admin->role != kRoleAdmin && m != "GET" && m != "HEAD" && m != "OPTIONS") {
    const char* action = m == "POST" ? "create" : m == "DELETE" ? "delete" : "update";
    return message(403, admin->name + ", you do not have permissions to " + action +
                            " this resource");
  }
  return std::nullopt;
}

ApiResponse AdminApi::handle(const ApiRequest& req) {
  if (std::optional<ApiResponse> denied = checkToken(req.method, req.admin_token)) {
    return *std::move(denied);
  }
  const ParsedTarget t = parseTarget(req.target);
  // Decoded bytes reach PostgreSQL as text: invalid UTF-8 or NUL there is a client error.
  const auto clean = [](const std::string& s) {
    return config::isValidUtf8(s) && s.find('\0') == std::string::npos;
  };
  for (const std::string& s : t.segments) {
    if (!clean(s)) {
      return message(400, "invalid UTF-8 or NUL in the request path");
    }
  }
  for (const auto& [k, v] : t.query) {
    if (!clean(k) || !clean(v)) {
      return message(400, "invalid UTF-8 or NUL in the query string");
    }
  }
  const auto& seg = t.segments;
  // The fleet registry (control_plane/fleet/): /clustering/*, /control-planes/{id}/nodes.
  if (fleet::FleetEndpoints* fleet = fleet::installedFleetEndpoints().load(); fleet != nullptr) {
    if (std::optional<fleet::FleetResponse> r = fleet->handle(req.method, seg, t.query);
        r.has_value()) {
      return {r->status, std::move(r->body)};
    }
  }
  if (!seg.empty() && seg[0] == "control-planes") {
    if (seg.size() <= 2) {
      return controlPlanes(req, seg);
    }
    auto group = store_.getGroup(seg[1]);
    if (!group.ok()) {
      return absl::IsNotFound(group.status()) ? konnectError(404, "control plane not found")
                                              : statusResponse(group.status());
    }
    return route(req, std::vector<std::string>(seg.begin() + 2, seg.end()), t.query, group->name,
                 "/control-planes/" + uriEscape(seg[1]));
  }
  return route(req, seg, t.query, kDefaultGroup, "");
}

ApiResponse AdminApi::controlPlanes(const ApiRequest& req, const std::vector<std::string>& seg) {
  const std::string& m = req.method;
  if (seg.size() == 1 && m == "GET") {
    const ParsedTarget t = parseTarget(req.target);
    int size = 100, number = 1;
    for (auto [key, out, max] : {std::tuple<const char*, int*, int>{"page[size]", &size, 1000},
                                 {"page[number]", &number, 1 << 30}}) {
      if (auto it = t.query.find(key); it != t.query.end()) {
        char* end = nullptr;
        const long v = std::strtol(it->second.c_str(), &end, 10);
        if (it->second.empty() || *end != '\0' || v < 1 || v > max) {
          return konnectError(400, std::string(key) + " must be an integer between 1 and " +
                                       std::to_string(max));
        }
        *out = static_cast<int>(v);
      }
    }
    auto groups = store_.listGroups();
    if (!groups.ok()) {
      return statusResponse(groups.status());
    }
    Json data = Json::array();
    const size_t first = static_cast<size_t>(number - 1) * static_cast<size_t>(size);
    for (size_t i = first; i < groups->size() && i < first + size; ++i) {
      data.push_back(groupJson((*groups)[i]));
    }
    return json(200, Json{{"data", std::move(data)},
                          {"meta",
                           {{"page",
                             {{"number", number}, {"size", size}, {"total", groups->size()}}}}}});
  }
  Body body;
  if (m == "POST" || m == "PATCH") {
    body = readBody(req);
    if (body.kind == BodyKind::kInvalid) {
      return konnectError(400, invalidBodyMessage(body));
    }
    if (body.kind == BodyKind::kRefused) {
      return konnectError(400, body.refused.front().reason, body.refused.front().field);
    }
    if (body.kind == BodyKind::kUnsupported) {
      return konnectError(415, "Unsupported Media Type");
    }
    if (!body.value.is_object()) {
      return konnectError(400, "the request body must be a JSON object");
    }
  }
  if (seg.size() == 1) {
    if (m != "POST") {
      return message(405, kMethodNotAllowed);
    }
    if (auto err = validateGroupBody(body.value, true)) {
      return *err;
    }
    GroupRecord g;
    g.name = body.value["name"].get<std::string>();
    if (body.value.contains("description") && body.value["description"].is_string()) {
      g.description = body.value["description"].get<std::string>();
    }
    if (body.value.contains("labels")) {
      g.labels = body.value["labels"];
    }
    auto created = store_.createGroup(g);
    if (absl::IsAlreadyExists(created.status())) {
      return konnectError(409, "a control plane named '" + g.name + "' already exists");
    }
    if (!created.ok()) {
      return statusResponse(created.status());
    }
    return json(201, groupJson(*created));
  }
  auto group = store_.getGroup(seg[1]);
  if (!group.ok()) {
    if (m == "DELETE" && absl::IsNotFound(group.status())) {
      return {204, ""};
    }
    return absl::IsNotFound(group.status()) ? konnectError(404, "control plane not found")
                                            : statusResponse(group.status());
  }
  if (m == "GET") {
    return json(200, groupJson(*group));
  }
  if (m == "PATCH") {
    if (auto err = validateGroupBody(body.value, false)) {
      return *err;
    }
    if (body.value.contains("name") && body.value["name"] != group->name) {
      return konnectError(400, "name cannot be changed: data planes address a control plane by "
                               "its name", "name", "immutable");
    }
    auto updated = store_.updateGroup(group->name, body.value);
    if (!updated.ok()) {
      return absl::IsNotFound(updated.status()) ? konnectError(404, "control plane not found")
                                                : statusResponse(updated.status());
    }
    return json(200, groupJson(*updated));
  }
  if (m == "DELETE") {
    if (group->name == kDefaultGroup) {
      return konnectError(400, "the default control plane cannot be deleted");
    }
    const absl::Status st = store_.deleteGroup(group->name);
    if (!st.ok() && !absl::IsNotFound(st)) {
      return statusResponse(st);
    }
    return {204, ""};
  }
  return message(405, kMethodNotAllowed);
}

// proxy-cache's Admin API (kong/plugins/proxy-cache/api.lua), for the whole group: DELETE
// /proxy-cache purges every DP's cache; GET|DELETE /proxy-cache/{key} and
// /proxy-cache/{plugin}/caches/{key} look up or purge one key on every DP. Kong purges the
// node it is asked and broadcasts to the others; here every DP of the group is asked at once
// and the answer waits for them (at most kPurgeWait).
ApiResponse AdminApi::proxyCache(const std::string& m, const std::vector<std::string>& seg,
                                 const std::string& group) {
  static constexpr char kNotFound[] = "Not found";
  const bool all = seg.size() == 1;
  const bool by_key = seg.size() == 2;
  const bool by_plugin = seg.size() == 4 && seg[2] == "caches";
  if (!options_.cache_purge || !(all || by_key || by_plugin)) {
    return message(404, kNotFound);
  }
  if (m != "DELETE" && (all || m != "GET")) {
    return message(405, kMethodNotAllowed);
  }
  if (by_plugin) {
    const absl::StatusOr<Json> plugin = store_.getJson(group, "plugins", seg[1]);
    if (!plugin.ok()) {
      return absl::IsNotFound(plugin.status()) ? message(404, kNotFound)
                                               : statusResponse(plugin.status());
    }
    if (plugin->value("name", "") != "proxy-cache") {
      return message(404, kNotFound);
    }
  }
  const std::string key = all ? "" : seg.back();
  const AdminApiOptions::CachePurgeReply r = options_.cache_purge(group, key, m == "GET");
  if (all) {
    return {204, ""};
  }
  if (m == "GET") {
    if (r.entry_json.empty()) {
      return message(404, kNotFound);
    }
    return {200, r.entry_json, ""};
  }
  return r.purged > 0 ? ApiResponse{204, ""} : message(404, kNotFound);
}

ApiResponse AdminApi::route(const ApiRequest& req, const std::vector<std::string>& segments,
                            const std::map<std::string, std::string>& query,
                            const std::string& group, const std::string& prefix) {
  const ParsedTarget t{segments, query};
  const auto& seg = t.segments;
  const std::string& m = req.method;
  const bool is_write = m == "POST" || m == "PUT" || m == "PATCH";
  Handler h(store_, group, prefix);
  const auto notAllowed = [] { return message(405, kMethodNotAllowed); };

  if (seg.empty()) {
    if (m != "GET") {
      return notAllowed();
    }
    Json enabled = Json::array();
    Json available = Json::object();
    // Only what every data plane of this build enforces (the plugin registry's schemas).
    for (const auto& p : config::pluginSchemas()) {
      enabled.push_back(p.name);
      available[p.name] = Json{{"version", p.version}, {"priority", p.priority}};
    }
    // `version` is the Kong Gateway release whose Admin API this one follows: Kong's clients
    // (decK, Kong Manager, Terraform providers) gate features on it. Ours is beside it.
    return json(200, Json{{"tagline", "Welcome to portico"},
                          {"version", kKongVersion},
                          {"portico_version", kPorticoVersion},
                          {"hostname", hostName()},
                          {"node_id", node_id_},
                          {"plugins",
                           {{"available_on_server", available}, {"enabled_in_cluster", enabled}}},
                          {"configuration",
                           {{"database", "postgres"}, {"role", "control_plane"},
                            {"plugins", enabled}}}});
  }
  if (seg.size() == 1 && seg[0] == "metrics" && prefix.empty()) {  // process-wide, root only
    if (m != "GET") {
      return notAllowed();
    }
    metrics::Writer w;
    w.gauge("kong_datastore_reachable", "1 if PostgreSQL answered this scrape's query.",
            store_.currentGeneration(group).ok() ? 1 : 0);
    w.gauge("portico_cp_admin_connections_active", "Admin API connections open now.",
            static_cast<double>(counters_.connections_active.load()));
    w.counter("portico_cp_admin_connections_accepted_total", "Admin API connections accepted.",
              static_cast<double>(counters_.connections_accepted.load()));
    w.counter("portico_cp_admin_requests_total", "Admin API requests received.",
              static_cast<double>(counters_.total_requests.load()));
    counters_.latency.write(w);
    const PgPool::Stats pool = store_.poolStats();
    w.gauge("portico_cp_pg_pool_size", "PostgreSQL connections the store's pool may open.",
            pool.size);
    w.beginGauge("portico_cp_pg_pool_connections",
                 "The store's PostgreSQL connections by state.");
    w.sample(pool.in_use, {{"state", "in_use"}});
    w.sample(pool.idle, {{"state", "idle"}});
    w.gauge("portico_cp_pg_pool_waiting", "Callers waiting for a PostgreSQL connection now.",
            pool.waiting);
    w.counter("portico_cp_pg_pool_waits_total",
              "Acquisitions that waited for a PostgreSQL connection.",
              static_cast<double>(pool.waits));
    w.counter("portico_cp_pg_pool_wait_seconds_total",
              "Time callers spent waiting for a PostgreSQL connection.", pool.wait_seconds);
    w.counter("portico_cp_pg_pool_acquire_timeouts_total",
              "Acquisitions that gave up waiting (answered 503).",
              static_cast<double>(pool.wait_timeouts));
    const PgConfigStore::InDoubtStats doubt = store_.inDoubtStats();
    w.beginCounter("portico_cp_commits_in_doubt_total",
                   "Writes whose COMMIT got no answer, by what the CP then found out.");
    w.sample(static_cast<double>(doubt.committed), {{"outcome", "committed"}});
    w.sample(static_cast<double>(doubt.not_committed), {{"outcome", "not_committed"}});
    w.sample(static_cast<double>(doubt.unknown), {{"outcome", "unknown"}});
    if (options_.metrics) {
      options_.metrics(w);
    }
    return {200, w.text(), metrics::Writer::kContentType};
  }
  if (seg.size() == 1 && seg[0] == "status") {
    if (m != "GET") {
      return notAllowed();
    }
    // The group's config generation lets a client wait until a DP runs its last write (a DP
    // reports the generation it applied on its own /status).
    const absl::StatusOr<uint64_t> generation = store_.currentGeneration(group);
    return json(200, Json{{"database", {{"reachable", generation.ok()}}},
                          {"configuration",
                           {{"group", group},
                            {"generation", generation.ok() ? Json(*generation) : Json(nullptr)}}},
                          {"server",
                           {{"connections_accepted", counters_.connections_accepted.load()},
                            {"connections_active", counters_.connections_active.load()},
                            {"connections_handled", counters_.connections_accepted.load()},
                            {"total_requests", counters_.total_requests.load()}}}});
  }
  if (seg[0] == "config" && seg.size() == 1) {
    // Before the generic body reading: the file may be YAML, a form or multipart, and large.
    return handleConfigEndpoint(store_, req, query, group, statusResponse);
  }
  Body body;
  if (is_write) {
    body = readBody(req);
  }
  // Checked per endpoint so a bad body on an unknown path still answers 404.
  const auto bodyError = [&]() -> std::optional<ApiResponse> {
    if (body.kind == BodyKind::kInvalid) {
      return message(400, invalidBodyMessage(body));
    }
    if (body.kind == BodyKind::kRefused) {
      return json(400, config::schemaViolationBody(body.refused));
    }
    if (body.kind == BodyKind::kUnsupported) {
      return message(415, "Unsupported Media Type");
    }
    return std::nullopt;
  };

  if (seg[0] == "plugins" && seg.size() == 2 && seg[1] == "enabled") {
    if (m != "GET") {
      return notAllowed();
    }
    Json enabled = Json::array();
    for (const auto& p : config::pluginSchemas()) {
      enabled.push_back(p.name);
    }
    return json(200, Json{{"enabled_plugins", enabled}});
  }
  if (seg[0] == "proxy-cache") {
    return proxyCache(m, seg, group);
  }
  if (seg[0] == "vitals" && options_.vitals) {
    return options_.vitals(m, group, seg, query);
  }
  if ((seg[0] == "data-plane-certificates" || seg[0] == "data-plane-tokens") && seg.size() <= 2) {
    if (!options_.provisioning) {
      return message(404, "issuing data plane credentials needs portico-cp --cluster_mtls=pki "
                          "--keyring=FILE (the control plane's own CA)");
    }
    return options_.provisioning(m, group, seg, req.body);
  }
  if (seg[0] == "tags" && seg.size() <= 2) {
    if (m != "GET") {
      return notAllowed();
    }
    return h.tags(t, seg.size() == 2 ? seg[1] : "");
  }
  if (seg[0] == "schemas" && seg.size() >= 2) {
    const bool plugins = seg[1] == "plugins" && seg.size() >= 3;
    const std::string name = plugins ? seg[2] : seg[1];
    const bool validate = seg.size() == (plugins ? 4u : 3u) && seg.back() == "validate";
    if (plugins && seg[2] == "validate" && seg.size() == 3) {
      if (m != "POST") {
        return notAllowed();
      }
      if (auto err = bodyError()) {
        return *err;
      }
      Json out;
      config::FieldErrors errors = config::processEntityJson("plugins", body.value, &out);
      if (errors.empty()) {
        errors = config::checkEntitySize("plugins", out);
      }
      if (!errors.empty()) {
        return json(400, config::schemaViolationBody(errors));
      }
      return json(200, Json{{"message", "schema validation successful"}});
    }
    if (validate) {
      if (m != "POST") {
        return notAllowed();
      }
      if (config::findEntitySchema(name) == nullptr) {
        return message(404, "No entity named '" + name + "'");
      }
      if (auto err = bodyError()) {
        return *err;
      }
      Json out;
      Json input = body.kind == BodyKind::kForm ? config::coerceFormValues(name, body.value)
                                                : body.value;
      config::FieldErrors errors = config::processEntityJson(name, input, &out);
      if (errors.empty()) {
        errors = config::checkEntitySize(name, out);
      }
      if (!errors.empty()) {
        return json(400, config::schemaViolationBody(errors));
      }
      return json(200, Json{{"message", "schema validation successful"}});
    }
    if (seg.size() == (plugins ? 3u : 2u)) {
      if (m != "GET") {
        return notAllowed();
      }
      if (plugins) {
        const config::PluginSchema* p = config::findPluginSchema(name);
        if (p == nullptr) {
          return message(404, "No plugin named '" + name + "'");
        }
        return json(200, config::pluginSchemaToJson(*p));
      }
      const config::EntitySchema* s = config::findEntitySchema(name);
      if (s == nullptr) {
        return message(404, "No entity named '" + name + "'");
      }
      return json(200, config::schemaToJson(*s));
    }
    return message(404, kNotFound);
  }

  const char* type_ptr = typeForPath(seg[0]);
  if (type_ptr == nullptr) {
    return message(404, kNotFound);
  }
  const std::string type = type_ptr;
  if (seg.size() == 1) {
    if (m == "GET") {
      return h.list(type, t, nullptr);
    }
    if (m == "POST") {
      if (auto err = bodyError()) {
        return *err;
      }
      return h.write(type, m, "", body, nullptr);
    }
    return notAllowed();
  }
  if (seg.size() == 2) {
    if (m == "GET") {
      return h.get(type, seg[1], nullptr);
    }
    if (m == "PUT" || m == "PATCH") {
      if (auto err = bodyError()) {
        return *err;
      }
      return h.write(type, m, seg[1], body, nullptr);
    }
    if (m == "DELETE") {
      return h.remove(type, seg[1], nullptr);
    }
    return notAllowed();
  }
  if (const Nested* n = findNested(type, seg[2]); n != nullptr && seg.size() <= 4) {
    Owner o;
    if (auto err = h.owner(*n, seg[1], &o)) {
      return *err;
    }
    if (seg.size() == 3) {
      if (m == "GET") {
        return h.list(n->type, t, &o);
      }
      if (m == "POST") {
        if (auto err = bodyError()) {
          return *err;
        }
        return h.write(n->type, m, "", body, &o);
      }
      return notAllowed();
    }
    if (m == "GET") {
      return h.get(n->type, seg[3], &o);
    }
    if (m == "PUT" || m == "PATCH") {
      if (auto err = bodyError()) {
        return *err;
      }
      return h.write(n->type, m, seg[3], body, &o);
    }
    if (m == "DELETE") {
      return h.remove(n->type, seg[3], &o);
    }
    return notAllowed();
  }
  if (seg.size() == 3) {
    const config::EntitySchema* schema = config::findEntitySchema(type);
    const config::Field* fk = schema != nullptr ? schema->field(seg[2]) : nullptr;
    if (fk != nullptr && fk->type == config::FieldType::kForeign) {
      if (m == "GET" || m == "PUT" || m == "PATCH") {
        if (auto err = is_write ? bodyError() : std::nullopt) {
          return *err;
        }
        return h.parentOf(type, seg[1], *fk, m, body);
      }
      return notAllowed();
    }
  }
  return message(404, kNotFound);
}

}  // namespace portico::cp
