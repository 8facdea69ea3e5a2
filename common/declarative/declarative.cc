#include "common/declarative/declarative.h"

#include <openssl/sha.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>
#include <absl/synchronization/mutex.h>

#include "common/config/entities.h"
#include "common/config/schema.h"
#include "common/config/validate.h"
#include "common/declarative/yaml_json.h"
#include "common/parallel.h"

namespace portico::declarative {
namespace {

namespace v1 = config::v1;
using config::EntitySchema;
using config::Field;
using config::FieldErrors;

constexpr char kEntitiesNamespace[] = "fd02801f-0957-4a15-a55a-c8d9606f30b5";
// Per-entity work of large files is split across LoadOptions::max_threads threads from this
// many entities per thread (burst.yml's 1,090 stay on one).
constexpr size_t kEntitiesPerThread = 2000;

// Kong's cache_key per entity (kong/db/schema/entities/*.lua and the bundled plugins'
// daos.lua); the schema engine has no use for them beyond this loader's ids.
const std::vector<std::string>& cacheKey(const std::string& entity) {
  static const auto* const kKeys = new absl::flat_hash_map<std::string, std::vector<std::string>>{
      {"plugins", {"name", "route", "service", "consumer"}},
      {"targets", {"upstream", "target"}},
      {"keyauth_credentials", {"key"}},
      {"basicauth_credentials", {"username"}},
      {"hmacauth_credentials", {"username"}},
      {"jwt_secrets", {"key"}},
      {"acls", {"consumer", "group"}},
  };
  static const auto* const kNone = new std::vector<std::string>();
  auto it = kKeys->find(entity);
  return it == kKeys->end() ? *kNone : it->second;
}

// Kong's endpoint_key where the Admin API's differs: ours addresses an ACL by group under its
// consumer; Kong's acls schema has none, so its ids come from the cache key.
const std::string& kongEndpointKey(const EntitySchema& s) {
  static const auto* const kNone = new std::string();
  return s.name == "acls" ? *kNone : s.endpoint_key;
}

std::string singular(const std::string& noun) {
  return !noun.empty() && noun.back() == 's' ? noun.substr(0, noun.size() - 1) : noun;
}

// One entity of the file, after its nested children were taken out.
struct Item {
  const EntitySchema* schema = nullptr;
  std::string pointer;        // where it is in the file
  Json input;                 // as written, minus _comment/_ignore and nested children
  int parent = -1;            // index into items
  std::string parent_field;   // the foreign field that points at the parent
  std::string id;
  Json normalized;            // as validated: what the snapshot holds
  bool has_errors = false;
};

// Mirrors Kong's err_t: a tree shaped like the file. Arrays hold positions; a key that is not
// a position (Kong keys some errors by endpoint key) turns the array into an object keyed by
// 1-based positions, as cjson encodes such a Lua table.
Json* mirrorSlot(Json* node, const std::vector<std::string>& segments) {
  for (const std::string& seg : segments) {
    const bool numeric =
        !seg.empty() && seg.find_first_not_of("0123456789") == std::string::npos;
    if (node->is_null()) {
      *node = numeric ? Json::array() : Json::object();
    }
    if (numeric && node->is_array()) {
      const size_t idx = std::stoul(seg);
      while (node->size() <= idx) {
        node->push_back(nullptr);
      }
      node = &(*node)[idx];
      continue;
    }
    if (node->is_array()) {
      Json obj = Json::object();
      for (size_t k = 0; k < node->size(); ++k) {
        if (!(*node)[k].is_null()) {
          obj[std::to_string(k + 1)] = std::move((*node)[k]);
        }
      }
      *node = std::move(obj);
    }
    if (!node->is_object()) {
      *node = Json::object();
    }
    node = &(*node)[numeric ? std::to_string(std::stoul(seg) + 1) : seg];
  }
  return node;
}

void setMirror(Json* root, const std::vector<std::string>& segments, Json value) {
  Json* slot = mirrorSlot(root, segments);
  if (slot->is_object() && value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it) {
      (*slot)[it.key()] = it.value();
    }
  } else {
    *slot = std::move(value);
  }
}

std::vector<std::string> pointerSegments(const std::string& pointer) {
  std::vector<std::string> out;
  if (pointer.empty()) {
    return out;
  }
  for (absl::string_view s : absl::StrSplit(pointer.substr(1), '/')) {
    std::string seg(s);
    // Undo pointerSegment's escapes.
    std::string plain;
    for (size_t i = 0; i < seg.size(); ++i) {
      if (seg[i] == '~' && i + 1 < seg.size()) {
        plain += seg[i + 1] == '1' ? '/' : '~';
        ++i;
      } else {
        plain += seg[i];
      }
    }
    out.push_back(std::move(plain));
  }
  return out;
}

// "paths.1" (Kong's 1-based field path) -> "/paths/0".
std::string fieldPointer(const std::string& field) {
  if (field.empty() || field == "@entity") {
    return "";
  }
  std::string out;
  for (absl::string_view s : absl::StrSplit(field, '.')) {
    out += '/';
    if (!s.empty() && s.find_first_not_of("0123456789") == absl::string_view::npos) {
      out += std::to_string(std::stoul(std::string(s)) - 1);
    } else {
      out += pointerSegment(std::string_view(s.data(), s.size()));
    }
  }
  return out;
}

// pl.pretty.write(t, "") as Kong's message renders err_t.
void pretty(const Json& v, std::string* out) {
  if (v.is_string()) {
    out->push_back('"');
    for (char c : v.get_ref<const std::string&>()) {
      if (c == '"' || c == '\\') {
        out->push_back('\\');
      }
      out->push_back(c);
    }
    out->push_back('"');
  } else if (v.is_array()) {
    bool holes = false;
    for (const auto& e : v) {
      holes = holes || e.is_null();
    }
    out->push_back('{');
    bool first = true;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i].is_null()) {
        continue;
      }
      if (!first) {
        out->push_back(',');
      }
      first = false;
      if (holes) {
        absl::StrAppend(out, "[", i + 1, "]=");
      }
      pretty(v[i], out);
    }
    out->push_back('}');
  } else if (v.is_object()) {
    out->push_back('{');
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!first) {
        out->push_back(',');
      }
      first = false;
      const std::string& k = it.key();
      if (!k.empty() && k.find_first_not_of("0123456789") == std::string::npos) {
        absl::StrAppend(out, "[", k, "]=");
      } else if (!k.empty() && (std::isalpha(static_cast<unsigned char>(k[0])) || k[0] == '_') &&
                 k.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"
                                     "789_") == std::string::npos) {
        absl::StrAppend(out, k, "=");
      } else {
        out->push_back('[');
        pretty(Json(k), out);
        out->append("]=");
      }
      pretty(it.value(), out);
    }
    out->push_back('}');
  } else {
    out->append(v.dump());
  }
}

template <class T>
void sortById(google::protobuf::RepeatedPtrField<T>* list) {
  std::sort(list->begin(), list->end(), [](const T& a, const T& b) { return a.id() < b.id(); });
}

// The line of the first byte that is not valid UTF-8 (or a NUL), 0 if none.
int badTextLine(std::string_view text, std::string* why) {
  size_t i = 0;
  const size_t n = text.size();
  const auto lineAt = [&](size_t pos) {
    return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(pos), '\n'));
  };
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == 0) {
        *why = "the file contains a NUL byte";
        return lineAt(i);
      }
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      *why = "the file is not valid UTF-8";
      return lineAt(i);
    }
    if (i + len > n) {
      *why = "the file is not valid UTF-8";
      return lineAt(i);
    }
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) {
        *why = "the file is not valid UTF-8";
        return lineAt(i);
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    const bool overlong = (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
                          (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      *why = "the file is not valid UTF-8";
      return lineAt(i);
    }
    i += len;
  }
  return 0;
}

class Loader {
 public:
  Loader(const LoadOptions& options, LoadResult* result)
      : options_(options), r_(*result) {
    for (const EntitySchema* s : config::allEntitySchemas()) {
      known_.push_back(s->name);
      for (const Field* f : s->foreignFields()) {
        children_[f->reference].emplace(s->name, f->name);
      }
    }
  }

  void run(std::string_view text) {
    if (text.size() > options_.max_bytes) {
      fileProblem(absl::StrCat("the file is ", text.size(), " bytes, more than the limit of ",
                               options_.max_bytes),
                  0);
      return;
    }
    std::string why;
    if (int line = badTextLine(text, &why); line > 0) {
      fileProblem(why, line);
      return;
    }
    YamlParse parsed = parseYaml(text, options_.yamlLimits());
    if (!parsed.ok) {
      fileProblem("failed parsing declarative configuration: " + parsed.error, parsed.error_line);
      return;
    }
    lines_ = std::move(parsed.lines);
    input_ = std::move(parsed.value);
    if (!input_.is_object()) {
      fileProblem("failed parsing declarative configuration: expected an object", 1);
      return;
    }
    if (!checkTopLevel()) {
      return;
    }
    if (r_.format_version == "1.1" || r_.format_version == "2.1") {
      migratePaths();
    }
    for (const std::string& type : known_) {
      auto it = input_.find(type);
      if (it != input_.end() && !it->is_null()) {
        collect(type, *it, "/" + type, -1);
      }
    }
    if (!r_.problems.empty()) {
      keepErrorEntities();
      return;
    }
    generateIds();
    if (options_.on_ids) {
      std::vector<std::pair<std::string, std::string>> ids;
      ids.reserve(items_.size());
      for (const Item& item : items_) {
        ids.emplace_back(item.schema->name, item.id);
      }
      options_.on_ids(std::move(ids));
    }
    indexEntities();
    std::vector<Problem> reference_problems = resolveReferences();
    validateEntities();
    checkUniqueness();
    if (r_.problems.empty() && !reference_problems.empty()) {
      r_.problems = std::move(reference_problems);  // Kong checks references after the schema
    }
    if (r_.problems.empty()) {
      buildSnapshot();
    }
    keepErrorEntities();
  }

 private:
  // flattened_errors' `entity`: each failing entity as the loader saw it (nested children
  // taken out, its parent's key in), which is what Kong's flattening shows.
  void keepErrorEntities() {
    absl::flat_hash_set<std::string> failing;
    for (const Problem& p : r_.problems) {
      failing.insert(p.pointer);
    }
    r_.error_entities = Json::object();
    for (Item& item : items_) {
      if (failing.contains(item.pointer)) {
        r_.error_entities[item.pointer] = std::move(item.input);
      }
    }
  }

  void fileProblem(std::string message, int line, std::string field = "") {
    r_.problems.push_back(Problem{"", field.empty() ? "" : "/" + field, field,
                                  std::move(message), line});
  }

  void entityProblem(size_t index, const std::string& field, const std::string& message) {
    Item& item = items_[index];
    item.has_errors = true;
    const int line = lineOf(lines_, item.pointer + fieldPointer(field));
    r_.problems.push_back(Problem{item.schema->name, item.pointer, field, message, line});
  }

  // _format_version, _transform, _comment, _ignore, decK's _info/_workspace/_konnect, and one
  // array per entity type; anything else is an unknown field.
  bool checkTopLevel() {
    const Json& in = input_;
    bool ok = true;
    const auto bad = [&](const std::string& field, const std::string& message) {
      fileProblem(message, lineOf(lines_, "/" + pointerSegment(field)), field);
      ok = false;
    };
    auto fv = in.find("_format_version");
    if (fv == in.end() || fv->is_null()) {
      bad("_format_version", "required field missing");
    } else if (!fv->is_string()) {
      bad("_format_version", "expected a string");
    } else {
      r_.format_version = fv->get<std::string>();
      if (r_.format_version != "1.1" && r_.format_version != "2.1" &&
          r_.format_version != "3.0") {
        bad("_format_version", "expected one of: 1.1, 2.1, 3.0");
      }
    }
    for (auto it = in.begin(); it != in.end(); ++it) {
      const std::string& key = it.key();
      const Json& v = it.value();
      if (key == "_format_version") {
        continue;
      }
      if (key == "_transform") {
        if (!v.is_boolean() && !v.is_null()) {
          bad(key, "expected a boolean");
        } else if (v.is_boolean()) {
          transform_ = v.get<bool>();
        }
      } else if (key == "_comment" || key == "_workspace") {
        if (!v.is_string() && !v.is_null()) {
          bad(key, "expected a string");
        }
      } else if (key == "_ignore") {
        if (!v.is_array() && !v.is_null()) {
          bad(key, "expected an array");
        }
      } else if (key == "_konnect") {
        if (!v.is_object() && !v.is_null()) {
          bad(key, "expected a record");
        }
      } else if (key == "_info") {
        ok = checkInfo(v) && ok;
      } else if (std::find(known_.begin(), known_.end(), key) != known_.end()) {
        if (!v.is_array() && !v.is_null()) {
          bad(key, "expected an array");
        }
      } else {
        bad(key, "unknown field");
      }
    }
    return ok;
  }

  // decK's `_info`: select_tags (added to every entity) and defaults (per entity type).
  bool checkInfo(const Json& info) {
    if (info.is_null()) {
      return true;
    }
    const auto bad = [&](const std::string& field, const std::string& message) {
      fileProblem(message, lineOf(lines_, "/_info/" + pointerSegment(field)), "_info." + field);
      return false;
    };
    if (!info.is_object()) {
      fileProblem("expected a record", lineOf(lines_, "/_info"), "_info");
      return false;
    }
    bool ok = true;
    for (auto it = info.begin(); it != info.end(); ++it) {
      const Json& v = it.value();
      if (it.key() == "select_tags") {
        if (!v.is_array()) {
          ok = bad("select_tags", "expected an array");
          continue;
        }
        for (const auto& t : v) {
          if (!t.is_string()) {
            ok = bad("select_tags", "expected an array of strings");
            break;
          }
          if (std::string err = config::checkTag(t.get<std::string>()); !err.empty()) {
            ok = bad("select_tags", err);
            break;
          }
          select_tags_.push_back(t.get<std::string>());
        }
      } else if (it.key() == "defaults") {
        if (!v.is_object()) {
          ok = bad("defaults", "expected a record");
          continue;
        }
        for (auto d = v.begin(); d != v.end(); ++d) {
          std::string type = d.key();
          if (std::find(known_.begin(), known_.end(), type) == known_.end()) {
            type += "s";
          }
          if (std::find(known_.begin(), known_.end(), type) == known_.end()) {
            ok = bad("defaults." + d.key(), "unknown entity type");
          } else if (!d.value().is_object()) {
            ok = bad("defaults." + d.key(), "expected a record");
          } else {
            defaults_[type] = d.value();
          }
        }
      } else if (it.key() == "_comment" || it.key() == "_ignore") {
        continue;
      } else {
        ok = bad(it.key(), "unknown field");
      }
    }
    return ok;
  }

  void migrateRoutes(Json* routes) {
    if (routes == nullptr || !routes->is_array()) {
      return;
    }
    for (auto& route : *routes) {
      if (!route.is_object()) {
        continue;
      }
      auto paths = route.find("paths");
      if (paths == route.end() || !paths->is_array()) {
        continue;
      }
      for (auto& p : *paths) {
        if (p.is_string()) {
          p = migrateRoutePath(p.get<std::string>());
        }
      }
    }
  }

  // Kong migrates top-level routes and routes nested in top-level services.
  void migratePaths() {
    Json& in = input_;
    if (auto it = in.find("routes"); it != in.end()) {
      migrateRoutes(&*it);
    }
    if (auto it = in.find("services"); it != in.end() && it->is_array()) {
      for (auto& s : *it) {
        if (s.is_object() && s.contains("routes")) {
          migrateRoutes(&s["routes"]);
        }
      }
    }
  }

  // Moves each entity's fields out of the parsed file into an Item (the file's tree is not
  // needed afterwards; copying it was a tenth of the load time of burst.yml).
  void collect(const std::string& type, Json& list, const std::string& pointer, int parent) {
    const EntitySchema* schema = config::findEntitySchema(type);
    if (!list.is_array()) {
      r_.problems.push_back(
          Problem{type, pointer, "", "expected an array", lineOf(lines_, pointer)});
      return;
    }
    const auto& nested = children_[type];
    for (size_t i = 0; i < list.size(); ++i) {
      Json& element = list[i];
      const std::string p = absl::StrCat(pointer, "/", i);
      if (!element.is_object()) {
        r_.problems.push_back(Problem{type, p, "", "expected a record", lineOf(lines_, p)});
        continue;
      }
      Item item;
      item.schema = schema;
      item.pointer = p;
      item.parent = parent;
      item.input = Json::object();
      std::vector<std::pair<std::string, Json*>> kids;
      for (auto it = element.begin(); it != element.end(); ++it) {
        const std::string& key = it.key();
        if (key == "_comment" || key == "_ignore") {
          continue;
        }
        if (type == "certificates" && key == "snis") {
          kids.emplace_back(key, &it.value());
          continue;
        }
        if (nested.contains(key) && schema->field(key) == nullptr) {
          kids.emplace_back(key, &it.value());
          continue;
        }
        item.input[key] = std::move(it.value());
      }
      if (parent >= 0) {
        item.parent_field = children_[items_[static_cast<size_t>(parent)].schema->name][type];
      }
      if (auto d = defaults_.find(type); d != defaults_.end()) {
        for (auto it = d->second.begin(); it != d->second.end(); ++it) {
          if (!item.input.contains(it.key())) {
            item.input[it.key()] = it.value();
          }
        }
      }
      if (!select_tags_.empty() && schema->field("tags") != nullptr) {
        Json& tags = item.input["tags"];
        if (tags.is_null()) {
          tags = Json::array();
        }
        if (tags.is_array()) {
          for (const std::string& t : select_tags_) {
            if (std::find(tags.begin(), tags.end(), Json(t)) == tags.end()) {
              tags.push_back(t);
            }
          }
        }
      }
      const size_t index = items_.size();
      items_.push_back(std::move(item));
      if (parent >= 0) {
        // A nested entity gets its parent from where it is: every foreign key must be null
        // (Kong's nested records set eq = null on them).
        for (const Field* fk : schema->foreignFields()) {
          auto v = items_[index].input.find(fk->name);
          if (v != items_[index].input.end() && !v->is_null()) {
            entityProblem(index, fk->name, "value must be null");
          }
        }
      }
      for (const auto& [key, value] : kids) {
        const std::string child_pointer = p + "/" + pointerSegment(key);
        if (type == "certificates" && key == "snis" && value->is_array()) {
          // Admin API style (a list of names) or nested sni records.
          Json snis = Json::array();
          for (const auto& s : *value) {
            snis.push_back(s.is_string() ? Json{{"name", s}} : s);
          }
          collect("snis", snis, child_pointer, static_cast<int>(index));
        } else {
          collect(key, *value, child_pointer, static_cast<int>(index));
        }
      }
    }
  }

  // The string Kong feeds to its UUIDv5 for an entity without an id
  // (declarative_config.lua: get_key_for_uuid_gen and build_cache_key).
  std::optional<std::string> uuidKey(const Item& item) {
    const EntitySchema& s = *item.schema;
    const std::string parent_id =
        item.parent >= 0 ? items_[static_cast<size_t>(item.parent)].id : std::string();
    const std::string& endpoint_key = kongEndpointKey(s);
    if (!endpoint_key.empty()) {
      auto ek = item.input.find(endpoint_key);
      if (ek != item.input.end() && !ek->is_null()) {
        if (!ek->is_string()) {
          return std::nullopt;
        }
        std::string key = ek->get<std::string>();
        const Field* f = s.field(endpoint_key);
        if (f != nullptr && !f->unique) {
          // Unique only under its parent (a target under its upstream): add the parent's key.
          for (const Field* fk : s.foreignFields()) {
            if (!fk->on_delete_cascade) {
              continue;
            }
            if (item.parent >= 0) {
              key += ":" + parent_id;
            } else {
              auto v = item.input.find(fk->name);
              if (v == item.input.end() || !v->is_string()) {
                return std::nullopt;
              }
              key += ":" + v->get<std::string>();
            }
          }
        }
        return key;
      }
    }
    const std::vector<std::string>& ck = cacheKey(s.name);
    if (ck.empty()) {
      return std::nullopt;
    }
    std::string key = s.name;
    for (const std::string& k : ck) {
      const Field* f = s.field(k);
      if (f == nullptr || f->auto_random) {
        return std::nullopt;
      }
      auto v = item.input.find(k);
      if (v != item.input.end() && v->is_string()) {
        key += ":" + v->get<std::string>();
      } else if (v == item.input.end()) {
        if (k == item.parent_field) {
          key += ":" + parent_id;
        } else if (f->required) {
          return std::nullopt;
        } else {
          key += ":";
        }
      }
      // Any other value (null, a record) adds nothing, as in Kong.
    }
    return key;
  }

  void generateIds() {
    for (Item& item : items_) {
      auto id = item.input.find("id");
      if (id != item.input.end() && id->is_string()) {
        item.id = id->get<std::string>();
        continue;
      }
      if (id != item.input.end() && !id->is_null()) {
        continue;  // the schema reports the type error
      }
      if (std::optional<std::string> key = uuidKey(item)) {
        item.id = entityUuid(item.schema->name, *key);
      } else {
        // Kong makes a random id here; ours follows the entity's place in the file, so the
        // same file always gives the same snapshot (a reload of an unchanged file is a no-op).
        item.id = entityUuid(item.schema->name, "@position:" + item.pointer);
      }
      item.input["id"] = item.id;
    }
  }

  void indexEntities() {
    for (size_t i = 0; i < items_.size(); ++i) {
      const Item& item = items_[i];
      const std::string& type = item.schema->name;
      if (!item.id.empty()) {
        by_id_[type].emplace(item.id, i);
      }
      const std::string& ek = item.schema->endpoint_key;
      if (!ek.empty()) {
        auto v = item.input.find(ek);
        if (v != item.input.end() && v->is_string()) {
          by_key_[type].emplace(v->get<std::string>(), i);
        }
      }
    }
  }

  std::optional<size_t> find(const std::string& type, const std::string& key) {
    if (auto t = by_key_.find(type); t != by_key_.end()) {
      if (auto it = t->second.find(key); it != t->second.end()) {
        return it->second;
      }
    }
    if (auto t = by_id_.find(type); t != by_id_.end()) {
      if (auto it = t->second.find(key); it != t->second.end()) {
        return it->second;
      }
    }
    return std::nullopt;
  }

  // Foreign keys of top-level entities, written as the referenced entity's endpoint key or
  // id (or decK's {id: ...}/{name: ...}), become {"id": ...}; nested ones get their parent.
  std::vector<Problem> resolveReferences() {
    std::vector<Problem> out;
    for (size_t i = 0; i < items_.size(); ++i) {
      Item& item = items_[i];
      if (item.parent >= 0) {
        item.input[item.parent_field] = Json{{"id", items_[static_cast<size_t>(item.parent)].id}};
      }
      for (const Field* fk : item.schema->foreignFields()) {
        if (item.parent >= 0) {
          break;  // nested: the others were checked to be null
        }
        auto v = item.input.find(fk->name);
        if (v == item.input.end() || v->is_null()) {
          continue;
        }
        std::string written;
        if (v->is_string()) {
          written = v->get<std::string>();
        } else if (v->is_object() && v->size() == 1 && v->begin()->is_string()) {
          written = v->begin()->get<std::string>();  // {id: ...} or {<endpoint key>: ...}
        } else {
          entityProblem(i, fk->name, "expected a string");
          continue;
        }
        if (std::optional<size_t> found = find(fk->reference, written)) {
          *v = Json{{"id", items_[*found].id}};
          continue;
        }
        // Kong keys these by the entity's endpoint key, else its id.
        std::string at = item.id;
        if (!item.schema->endpoint_key.empty()) {
          auto ek = item.input.find(item.schema->endpoint_key);
          if (ek != item.input.end() && ek->is_string()) {
            at = ek->get<std::string>();
          }
        }
        const std::string message = "invalid reference '" + fk->name + ": " +
                                    (v->is_string() ? written : v->dump()) +
                                    "' (no such entry in '" + fk->reference + "')";
        out.push_back(Problem{item.schema->name, item.pointer, fk->name, message,
                              lineOf(lines_, item.pointer + "/" + pointerSegment(fk->name)),
                              "/" + item.schema->name + "/" + pointerSegment(at)});
        // Validate the rest as if it resolved (the schema's errors come first).
        *v = Json{{"id", "00000000-0000-4000-8000-000000000000"}};
      }
    }
    return out;
  }

  // Each entity through the Admin API's own rules (its schema). Entities are independent:
  // large files are checked on two threads (10,000 routes: ~40% of the load), and their
  // errors reported in file order after.
  void validateEntities() {
    std::vector<FieldErrors> errors(items_.size());
    parallelFor(items_.size(), kEntitiesPerThread, options_.max_threads, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        if (!items_[i].has_errors) {
          errors[i] = validateEntity(items_[i]);
        }
      }
    });
    for (size_t i = 0; i < items_.size(); ++i) {
      for (const config::FieldError& e : errors[i]) {
        entityProblem(i, e.field, e.reason);
      }
    }
  }

  // Sets item.normalized; reads nothing else of the loader's (validateEntities' threads).
  FieldErrors validateEntity(Item& item) const {
    const std::string& type = item.schema->name;
    FieldErrors errors = config::processEntityJson(type, item.input, &item.normalized);
    if (errors.empty() && type == "services") {
      errors = explicitServiceFieldErrors(item.input);
    }
    if (errors.empty()) {
      errors = config::checkEntitySize(type, item.normalized);
    }
    if (!errors.empty() || item.normalized.is_null()) {
      return errors;
    }
    item.normalized["id"] = item.id;
    if (type == "basicauth_credentials" && transform_ && item.normalized["password"].is_string()) {
      item.normalized["password"] =
          config::basicAuthHash(item.normalized["password"].get<std::string>(),
                                item.normalized["consumer"]["id"].get<std::string>());
    }
    return errors;
  }

  // A unique field's value as validated, when it is a string.
  static const std::string* uniqueValue(const Item& item, const std::string& field) {
    auto v = item.normalized.find(field);
    return v != item.normalized.end() && v->is_string() ? &v->get_ref<const std::string&>()
                                                         : nullptr;
  }

  // Kong validates a declarative file before it expands shorthands, so a service's explicit
  // protocol/host/port/path are checked as written even when `url` then replaces them
  // (Supabase's `url: http://... ` with `protocol: ws` is refused, as Kong 3.x refuses it);
  // the Admin API expands first and takes the url's values.
  static FieldErrors explicitServiceFieldErrors(const Json& input) {
    static const char* const kParts[] = {"protocol", "host", "port", "path"};
    auto url = input.find("url");
    if (url == input.end() || url->is_null()) {
      return {};
    }
    Json raw = input;
    raw.erase("url");
    bool any = false;
    for (const char* part : kParts) {
      any = any || (raw.contains(part) && !raw[part].is_null());
    }
    if (!any) {
      return {};
    }
    if (!raw.contains("host") || raw["host"].is_null()) {
      raw["host"] = "placeholder.invalid";
    }
    Json ignored;
    FieldErrors out;
    for (config::FieldError& e : config::processEntityJson("services", raw, &ignored)) {
      for (const char* part : kParts) {
        if (e.field == part && input.contains(part)) {
          out.push_back(std::move(e));
          break;
        }
      }
    }
    return out;
  }

  // Kong's declarative uniqueness: primary keys and endpoint keys at the entity's place in
  // the file; other unique fields keyed by the entity's endpoint key (or id).
  void checkUniqueness() {
    absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, size_t>> seen;
    for (size_t i = 0; i < items_.size(); ++i) {
      Item& item = items_[i];
      if (item.has_errors) {
        continue;
      }
      const std::string& type = item.schema->name;
      const auto dup = [&](const std::string& what, const std::string& value) {
        uniqueness_.push_back(Uniqueness{i, what, value});
        item.has_errors = true;
      };
      bool duplicate = false;
      for (const Field& f : item.schema->fields) {
        if (!f.unique || f.name == "id") {
          continue;
        }
        const std::string* v = uniqueValue(item, f.name);
        if (v == nullptr) {
          continue;
        }
        if (!seen[type + ":" + f.name].emplace(*v, i).second) {
          dup(f.name, *v);
          duplicate = true;
          break;
        }
      }
      // Kong checks the file before it generates ids: two entities of one name collide on
      // the name, not on the id derived from it.
      if (!duplicate && !seen["id:" + type].emplace(item.id, i).second) {
        dup("primary key", item.id);
      }
    }
    for (const Uniqueness& u : uniqueness_) {
      const Item& item = items_[u.index];
      const std::string message = "uniqueness violation: '" + item.schema->name +
                                  "' entity with " + u.field + " set to '" + u.value +
                                  "' already declared";
      std::string keyed;
      if (u.field != "primary key" && u.field != item.schema->endpoint_key) {
        std::string at = item.id;
        if (!item.schema->endpoint_key.empty()) {
          if (const std::string* ek = uniqueValue(item, item.schema->endpoint_key)) {
            at = *ek;
          }
        }
        keyed = "/" + item.schema->name + "/" + pointerSegment(at);
      }
      r_.problems.push_back(Problem{item.schema->name, item.pointer, "", message,
                                    lineOf(lines_, item.pointer), keyed});
    }
  }

  void buildSnapshot() {
    v1::Snapshot& snap = r_.snapshot;
    snap.set_group(options_.group);
    snap.set_generation(options_.generation);
    const google::protobuf::Descriptor* d = snap.GetDescriptor();
    const google::protobuf::Reflection* refl = snap.GetReflection();
    // The messages are added here, filled on two threads for large files.
    std::vector<google::protobuf::Message*> messages(items_.size(), nullptr);
    for (size_t i = 0; i < items_.size(); ++i) {
      if (const auto* f = d->FindFieldByName(items_[i].schema->name); f != nullptr) {
        messages[i] = refl->AddMessage(&snap, f);
      }
    }
    parallelFor(items_.size(), kEntitiesPerThread, options_.max_threads, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        if (messages[i] != nullptr) {
          config::jsonToProto(items_[i].normalized, messages[i]);
        }
      }
    });
    sortById(snap.mutable_services());
    sortById(snap.mutable_routes());
    sortById(snap.mutable_consumers());
    sortById(snap.mutable_plugins());
    sortById(snap.mutable_upstreams());
    sortById(snap.mutable_targets());
    sortById(snap.mutable_certificates());
    sortById(snap.mutable_snis());
    sortById(snap.mutable_ca_certificates());
    sortById(snap.mutable_keyauth_credentials());
    sortById(snap.mutable_basicauth_credentials());
    sortById(snap.mutable_jwt_secrets());
    sortById(snap.mutable_hmacauth_credentials());
    sortById(snap.mutable_acls());
    // What ties the entities together, as every DP checks it on apply (each entity's own rules
    // ran above, with the same code): whatever a DP would refuse is refused here, in the
    // file's terms.
    for (const config::FieldError& e :
         config::validateSnapshot(snap, nullptr, /*check_entities=*/false)) {
      auto t = by_id_.find(e.entity_type);
      if (t != by_id_.end()) {
        if (auto it = t->second.find(e.entity_id); it != t->second.end()) {
          entityProblem(it->second, e.field, e.reason);
          continue;
        }
      }
      r_.problems.push_back(Problem{e.entity_type, "", e.field, e.reason, 0});
    }
  }

  struct Uniqueness {
    size_t index;
    std::string field;
    std::string value;
  };

  const LoadOptions& options_;
  LoadResult& r_;
  LineMap lines_;
  Json input_;  // the parsed file; entities are moved out of it by collect()
  std::vector<std::string> known_;
  // children_[parent type][child type] = the child's foreign field naming the parent.
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, std::string>> children_;
  std::vector<Item> items_;
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, size_t>> by_id_;
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, size_t>> by_key_;
  std::vector<Uniqueness> uniqueness_;
  std::vector<std::string> select_tags_;
  absl::flat_hash_map<std::string, Json> defaults_;
  bool transform_ = true;
};

}  // namespace

std::string uuid5(const std::string& namespace_uuid, std::string_view name) {
  unsigned char ns[16] = {};
  size_t n = 0;
  for (size_t i = 0; i < namespace_uuid.size() && n < 32; ++i) {
    const char c = namespace_uuid[i];
    if (c == '-') {
      continue;
    }
    const int v = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
    ns[n / 2] = static_cast<unsigned char>(ns[n / 2] | (v << ((n % 2) ? 0 : 4)));
    ++n;
  }
  std::string input(reinterpret_cast<const char*>(ns), sizeof(ns));
  input.append(name.data(), name.size());
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), md);
  md[6] = static_cast<unsigned char>((md[6] & 0x0F) | 0x50);
  md[8] = static_cast<unsigned char>((md[8] & 0x3F) | 0x80);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      out.push_back('-');
    }
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

std::string entityUuid(const std::string& entity, const std::string& key) {
  // One namespace per entity type, computed once (Kong's uuid_generators cache).
  static auto* const namespaces = new absl::flat_hash_map<std::string, std::string>();
  static absl::Mutex mu(absl::kConstInit);
  std::string ns;
  {
    absl::MutexLock lock(&mu);
    auto it = namespaces->find(entity);
    if (it == namespaces->end()) {
      it = namespaces->emplace(entity, uuid5(kEntitiesNamespace, entity)).first;
    }
    ns = it->second;
  }
  return uuid5(ns, key);
}

std::string migrateRoutePath(const std::string& path) {
  const bool plain =
      path.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_~/%") ==
      std::string::npos;
  if (plain) {
    return config::normalizePath(path);
  }
  // Decode %XX of unreserved characters; reserved ones stay encoded (upper-cased), regex
  // metacharacters decode escaped.
  static constexpr std::string_view kReserved = "!#$%&'()*+,/:;=?@[]";
  static constexpr std::string_view kMeta = ".^-{}\\|";
  std::string out = "~";
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' && i + 2 < path.size() + 0 && std::isxdigit(static_cast<unsigned char>(path[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(path[i + 2]))) {
      const int v = std::stoi(path.substr(i + 1, 2), nullptr, 16);
      const char c = static_cast<char>(v);
      if (kReserved.find(c) != std::string_view::npos) {
        out += '%';
        out += static_cast<char>(std::toupper(static_cast<unsigned char>(path[i + 1])));
        out += static_cast<char>(std::toupper(static_cast<unsigned char>(path[i + 2])));
      } else if (kMeta.find(c) != std::string_view::npos) {
        out += '\\';
        out += c;
      } else {
        out += c;
      }
      i += 2;
      continue;
    }
    out += path[i];
  }
  return out;
}

LoadResult loadDeclarative(std::string_view text, const LoadOptions& options) {
  LoadResult result;
  auto loader = std::make_shared<Loader>(options, &result);
  try {
    loader->run(text);
  } catch (const std::exception& e) {
    // A bug of ours, not of the file: the DP keeps its running config (and its process)
    // rather than stopping on a reload. The fuzz target treats this message as a failure.
    result.problems.push_back(
        Problem{"", "", "", std::string(kInternalErrorPrefix) + e.what(), 0});
  }
  if (!result.ok()) {
    result.snapshot.Clear();
  }
  if (options.keep_scratch) {
    result.scratch = std::move(loader);  // its reference to `result` is never used again
  }
  return result;
}

LoadResult loadDeclarativeFile(const std::string& path, const LoadOptions& options) {
  LoadResult result;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    result.problems.push_back(Problem{"", "", "", "cannot read " + path, 0});
    return result;
  }
  if (static_cast<uint64_t>(st.st_size) > options.max_bytes) {
    result.problems.push_back(Problem{"", "", "",
                                      absl::StrCat("the file is ", st.st_size,
                                                   " bytes, more than the limit of ",
                                                   options.max_bytes),
                                      0});
    return result;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    result.problems.push_back(Problem{"", "", "", "cannot read " + path, 0});
    return result;
  }
  std::string text;
  if (S_ISREG(st.st_mode)) {
    text.resize(static_cast<size_t>(st.st_size));
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
  } else {
    // A pipe or device (/dev/stdin): read up to one byte past the limit, which refuses it.
    char buf[1 << 16];
    while (text.size() <= options.max_bytes && in.read(buf, sizeof(buf)).gcount() > 0) {
      text.append(buf, static_cast<size_t>(in.gcount()));
    }
  }
  return loadDeclarative(text, options);
}

Json LoadResult::errorBody() const {
  Json fields = Json::object();
  Json flattened = Json::array();
  // Per entity (by pointer): its flattened entry.
  absl::flat_hash_map<std::string, size_t> entry_of;
  for (const Problem& p : problems) {
    if (p.entity_type.empty()) {
      if (!p.field.empty()) {
        setMirror(&fields, pointerSegments("/" + p.field), Json(p.message));
      } else {
        // Not about a field (size, encoding, syntax): Kong answers these with a message alone.
        Json body = {{"code", 14},
                     {"name", "invalid declarative configuration"},
                     {"message", p.message},
                     {"fields", Json::object()},
                     {"flattened_errors", Json::array()}};
        if (p.line > 0) {
          body["line"] = p.line;
        }
        return body;
      }
      continue;
    }
    // `fields`: schema errors as an object at the entity's place; entity-wide messages
    // (uniqueness, references) as the string or list Kong puts there.
    const std::string& where = p.fields_pointer.empty() ? p.pointer : p.fields_pointer;
    if (p.message.rfind("invalid reference", 0) == 0) {
      Json* slot = mirrorSlot(&fields, pointerSegments(where));
      if (!slot->is_array()) {
        *slot = Json::array();
      }
      slot->push_back(p.message);
    } else if (p.field.empty()) {
      setMirror(&fields, pointerSegments(where), Json(p.message));
    } else {
      setMirror(&fields, pointerSegments(where),
                config::fieldsObject({{p.entity_type, "", p.field, p.message}}));
    }
    // flattened_errors.
    auto [it, fresh] = entry_of.try_emplace(p.pointer + "|" + p.entity_type, flattened.size());
    if (fresh) {
      Json entity = Json::object();
      if (auto e = error_entities.find(p.pointer);
          error_entities.is_object() && e != error_entities.end()) {
        entity = *e;
      }
      Json e = {{"entity_type", singular(p.entity_type)}, {"entity", entity}, {"errors", Json::array()}};
      if (entity.contains("name") && entity["name"].is_string() &&
          !entity["name"].get<std::string>().empty()) {
        e["entity_name"] = entity["name"];
      }
      if (entity.contains("id") && entity["id"].is_string() &&
          config::isUuid(entity["id"].get<std::string>())) {
        e["entity_id"] = entity["id"];
      }
      if (entity.contains("tags") && entity["tags"].is_array()) {
        e["entity_tags"] = entity["tags"];
      }
      flattened.push_back(std::move(e));
    }
    Json err = p.field.empty() || p.field == "@entity"
                   ? Json{{"type", "entity"}, {"message", p.message}}
                   : Json{{"type", "field"}, {"field", p.field}, {"message", p.message}};
    if (p.line > 0) {
      err["line"] = p.line;
    }
    flattened[it->second]["errors"].push_back(std::move(err));
  }
  std::string rendered;
  pretty(fields, &rendered);
  return Json{{"code", 14},
              {"name", "invalid declarative configuration"},
              {"message", "declarative config is invalid: " + rendered},
              {"fields", std::move(fields)},
              {"flattened_errors", std::move(flattened)}};
}

std::string LoadResult::describe(const std::string& file, size_t max_lines) const {
  std::string out;
  size_t shown = 0;
  for (const Problem& p : problems) {
    if (shown == max_lines) {
      absl::StrAppend(&out, "... and ", problems.size() - shown, " more\n");
      break;
    }
    ++shown;
    absl::StrAppend(&out, file, ":", p.line > 0 ? std::to_string(p.line) : "?", ": ");
    if (!p.pointer.empty()) {
      absl::StrAppend(&out, p.pointer.substr(1));
      if (!p.field.empty() && !p.entity_type.empty()) {
        absl::StrAppend(&out, " ", p.field);
      }
      out += ": ";
    }
    absl::StrAppend(&out, p.message, "\n");
  }
  return out;
}

}  // namespace portico::declarative
