#include "cli/online_state.h"

#include <algorithm>
#include <cstring>
#include <set>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config/entities.h"
#include "common/config/proto_json.h"
#include "common/declarative/declarative.h"
#include "common/declarative/yaml_json.h"

namespace portico::cli::online {

int typeIndex(std::string_view type) {
  for (size_t i = 0; i < kNumTypes; ++i) {
    if (type == kTypes[i].type) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

std::string str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The id inside a foreign key ({"id": ...}), or "".
std::string foreignId(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_object()) {
    return "";
  }
  return str(*it, "id");
}

bool hasAllTags(const Json& e, const std::vector<std::string>& tags) {
  if (tags.empty()) {
    return true;
  }
  auto it = e.find("tags");
  if (it == e.end() || !it->is_array()) {
    return false;
  }
  for (const std::string& t : tags) {
    if (std::find(it->begin(), it->end(), Json(t)) == it->end()) {
      return false;
    }
  }
  return true;
}

std::string uriEscape(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// "HTTP 400: <message>" from an error answer.
std::string describeAnswer(const HttpResponse& r) {
  Json body = Json::parse(r.body, nullptr, false);
  std::string msg;
  if (body.is_object() && body.contains("message") && body["message"].is_string()) {
    msg = body["message"].get<std::string>();
  } else {
    msg = r.body.substr(0, 300);
  }
  return absl::StrCat("HTTP ", r.status, msg.empty() ? "" : ": ", msg);
}

namespace {

// GETs every page of `path` (a collection), following Kong's `offset`.
absl::Status listAll(HttpClient& c, const std::string& path, const std::string& tags_query,
                     std::vector<Json>* out) {
  std::string offset;
  for (;;) {
    std::string target = path + "?size=1000" + tags_query;
    if (!offset.empty()) {
      target += "&offset=" + uriEscape(offset);
    }
    absl::StatusOr<HttpResponse> r = c.request("GET", target);
    if (!r.ok()) {
      return r.status();
    }
    if (r->status != 200) {
      return absl::FailedPreconditionError(
          absl::StrCat("GET ", target, ": ", describeAnswer(*r)));
    }
    Json body = Json::parse(r->body, nullptr, false);
    if (!body.is_object() || !body.contains("data") || !body["data"].is_array()) {
      return absl::InternalError("GET " + target + ": not a Kong list answer");
    }
    for (Json& e : body["data"]) {
      out->push_back(std::move(e));
    }
    auto it = body.find("offset");
    if (it == body.end() || !it->is_string() || it->get<std::string>().empty()) {
      return absl::OkStatus();
    }
    offset = it->get<std::string>();
  }
}

}  // namespace

// The entities on the control plane that carry every select tag.
absl::StatusOr<EntitySet> fetchCurrent(Admin& admin, const std::vector<std::string>& tags) {
  EntitySet set;
  std::string tags_query;
  if (!tags.empty() && tags.size() <= 5) {  // the Admin API takes at most 5; else filter here
    tags_query = "&tags=" + uriEscape(absl::StrJoin(tags, ","));
  }
  std::vector<size_t> top;
  for (size_t i = 0; i < kNumTypes; ++i) {
    if (kTypes[i].path[0] != '\0') {
      top.push_back(i);
    }
  }
  std::vector<absl::Status> errors(kNumTypes);
  admin.parallelFor(top.size(), [&](HttpClient& c, size_t k) {
    const size_t t = top[k];
    errors[t] = listAll(c, admin.prefix() + "/" + kTypes[t].path, tags_query, &set[t]);
  });
  for (const absl::Status& st : errors) {
    if (!st.ok()) {
      return st;
    }
  }
  const size_t ups = static_cast<size_t>(typeIndex("upstreams"));
  const size_t tgt = static_cast<size_t>(typeIndex("targets"));
  std::vector<std::vector<Json>> per_upstream(set[ups].size());
  std::vector<absl::Status> target_errors(set[ups].size());
  admin.parallelFor(set[ups].size(), [&](HttpClient& c, size_t k) {
    target_errors[k] = listAll(
        c, admin.prefix() + "/upstreams/" + uriEscape(str(set[ups][k], "id")) + "/targets", "",
        &per_upstream[k]);
  });
  for (size_t k = 0; k < per_upstream.size(); ++k) {
    if (!target_errors[k].ok()) {
      return target_errors[k];
    }
    for (Json& e : per_upstream[k]) {
      set[tgt].push_back(std::move(e));
    }
  }
  for (auto& list : set) {
    list.erase(std::remove_if(list.begin(), list.end(),
                              [&](const Json& e) { return !hasAllTags(e, tags); }),
               list.end());
  }
  return set;
}

namespace {

absl::StatusOr<std::string> readState(const std::string& path) {
  const std::string name = path == "-" ? "<stdin>" : path;
  FILE* f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::NotFoundError("cannot read " + name + ": " + std::strerror(errno));
  }
  std::string text;
  char buf[1 << 16];
  size_t n;
  // At most the limit plus one block: a huge file or stream is refused without holding it.
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    text.append(buf, n);
    if (text.size() > declarative::kMaxFileBytes) {
      if (f != stdin) {
        std::fclose(f);
      }
      return absl::InvalidArgumentError(name + ": larger than the limit of " +
                                        std::to_string(declarative::kMaxFileBytes) + " bytes");
    }
  }
  const bool failed = std::ferror(f) != 0;
  const int error = errno;
  if (f != stdin) {
    std::fclose(f);
  }
  if (failed) {
    return absl::InvalidArgumentError("cannot read " + name + ": " + std::strerror(error));
  }
  return text;
}

}  // namespace

std::vector<std::string> sortedTags(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

namespace {

// The snapshot's entities in the Admin API's stored form (as POST /config stores them).
EntitySet storedEntities(const config::v1::Snapshot& snap) {
  EntitySet set;
  const google::protobuf::Descriptor* desc = snap.GetDescriptor();
  const google::protobuf::Reflection* refl = snap.GetReflection();
  for (size_t t = 0; t < kNumTypes; ++t) {
    std::vector<Json>& list = set[t];
    const std::string type = kTypes[t].type;
    if (const google::protobuf::FieldDescriptor* f = desc->FindFieldByName(type)) {
      const int n = refl->FieldSize(snap, f);
      list.reserve(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) {
        list.push_back(config::protoToJson(refl->GetRepeatedMessage(snap, f, i)));
      }
    }
  }
  return set;
}

}  // namespace

// Loads every state file, merged as decK merges them, through the declarative loader. Errors
// are printed to `err`; returns nullopt then. `on_tags` is called once the select tags are
// known, before the loader runs (the caller starts reading the current state meanwhile).
std::optional<Desired> loadDesired(
    const OnlineOptions& options, FILE* err,
    const std::function<void(const std::vector<std::string>&)>& on_tags) {
  Desired d;
  Json merged = Json::object();
  std::vector<std::string> texts;
  std::vector<std::string> file_tags;
  bool have_file_tags = false;
  std::optional<bool> transform;
  std::vector<std::string> raw;
  for (const std::string& path : options.states) {
    absl::StatusOr<std::string> text = readState(path);
    if (!text.ok()) {
      std::fprintf(err, "porticoctl: %s\n", std::string(text.status().message()).c_str());
      return std::nullopt;
    }
    raw.push_back(*std::move(text));
  }
  // One file that needs nothing changed before loading (no select tags, no basic-auth
  // password to keep in plain text) goes to the loader as it is: one parse instead of
  // parse, merge, print and parse again (about 130 ms on a 10,000-route file).
  if (raw.size() == 1 && options.select_tags.empty() &&
      raw[0].find("_info") == std::string::npos && raw[0].find("basic") == std::string::npos &&
      raw[0].find("_transform") == std::string::npos) {
    on_tags({});
    declarative::LoadResult r = declarative::loadDeclarative(raw[0]);
    if (!r.ok()) {
      std::fputs(r.describe(options.states[0] == "-" ? "<stdin>" : options.states[0], 200)
                     .c_str(),
                 err);
      return std::nullopt;
    }
    d.entities = storedEntities(r.snapshot);
    return d;
  }
  for (size_t f = 0; f < raw.size(); ++f) {
    const std::string& path = options.states[f];
    const std::string name = path == "-" ? "<stdin>" : path;
    std::optional<std::string> text(std::move(raw[f]));
    declarative::YamlParse parsed =
        declarative::parseYaml(*text, declarative::LoadOptions{}.yamlLimits());
    if (!parsed.ok) {
      std::fprintf(err, "%s:%d: %s\n", name.c_str(), parsed.error_line, parsed.error.c_str());
      return std::nullopt;
    }
    if (parsed.value.is_null()) {
      parsed.value = Json::object();  // an empty file: no entities
    }
    if (!parsed.value.is_object()) {
      std::fprintf(err, "%s: expected a map of entity types at the top level\n", name.c_str());
      return std::nullopt;
    }
    for (auto it = parsed.value.begin(); it != parsed.value.end(); ++it) {
      const std::string& key = it.key();
      if (key == "_transform" && it->is_boolean()) {
        if (transform && *transform != it->get<bool>()) {
          std::fprintf(err, "%s: _transform differs from the other files'\n", name.c_str());
          return std::nullopt;
        }
        transform = it->get<bool>();
        continue;
      }
      if (key == "_info" && it->is_object() && it->contains("select_tags")) {
        std::vector<std::string> tags;
        if ((*it)["select_tags"].is_array()) {
          for (const Json& t : (*it)["select_tags"]) {
            if (t.is_string()) {
              tags.push_back(t.get<std::string>());
            }
          }
        }
        tags = sortedTags(std::move(tags));
        if (have_file_tags && tags != file_tags) {
          std::fprintf(err, "%s: _info.select_tags differ from the other files'\n", name.c_str());
          return std::nullopt;
        }
        have_file_tags = true;
        file_tags = tags;
      }
      auto slot = merged.find(key);
      if (slot == merged.end()) {
        merged[key] = std::move(*it);
      } else if (slot->is_array() && it->is_array()) {
        for (Json& e : *it) {
          slot->push_back(std::move(e));
        }
      } else if (*slot != *it) {
        if (key == "_format_version") {
          std::fprintf(err, "%s: _format_version %s differs from the other files' %s\n",
                       name.c_str(), it->dump().c_str(), slot->dump().c_str());
          return std::nullopt;
        }
        // Same as decK: a later file's setting wins for keys that are not entity lists.
        *slot = std::move(*it);
      }
    }
    texts.push_back(std::move(*text));
  }
  std::vector<std::string> flag_tags = sortedTags(options.select_tags);
  if (!flag_tags.empty() && have_file_tags && flag_tags != file_tags) {
    std::fprintf(err,
                 "porticoctl: --select-tag (%s) differs from the file's _info.select_tags (%s)\n",
                 absl::StrJoin(flag_tags, ",").c_str(), absl::StrJoin(file_tags, ",").c_str());
    return std::nullopt;
  }
  d.select_tags = !flag_tags.empty() ? flag_tags : file_tags;
  if (!d.select_tags.empty()) {
    if (!merged.contains("_info") || !merged["_info"].is_object()) {
      merged["_info"] = Json::object();
    }
    merged["_info"]["select_tags"] = d.select_tags;
  }
  d.transform = transform.value_or(true);
  on_tags(d.select_tags);
  // Plain passwords must reach the Admin API (which hashes them); the loader would hash them.
  merged["_transform"] = false;
  StepTimer timer;
  std::string merged_text = merged.dump();
  timer.step("  parse and merge");
  declarative::LoadResult r = declarative::loadDeclarative(merged_text);
  timer.step("  loader");
  merged = Json();
  if (!r.ok()) {
    // Report against the file itself when there is one, so lines are the file's.
    if (texts.size() == 1 && options.select_tags.empty()) {
      declarative::LoadResult own = declarative::loadDeclarative(texts[0]);
      if (!own.ok()) {
        std::fputs(own.describe(options.states[0] == "-" ? "<stdin>" : options.states[0], 200)
                       .c_str(),
                   err);
        return std::nullopt;
      }
    }
    std::fputs(r.describe(texts.size() == 1 ? options.states[0] : "<merged files>", 200).c_str(),
               err);
    return std::nullopt;
  }
  d.entities = storedEntities(r.snapshot);
  return d;
}

// ---------------------------------------------------------------------------------------------
// The plan

namespace {

// What identifies an entity besides its id, for matching a file without ids against entities
// created elsewhere (decK matches by name the same way). "" = by id only.
std::string naturalKey(const std::string& type, const Json& e) {
  if (type == "services" || type == "routes" || type == "upstreams" || type == "snis") {
    return str(e, "name");
  }
  if (type == "consumers") {
    std::string u = str(e, "username");
    return u.empty() ? (str(e, "custom_id").empty() ? "" : "custom_id:" + str(e, "custom_id"))
                     : "username:" + u;
  }
  if (type == "plugins") {
    return absl::StrCat(str(e, "name"), "|", foreignId(e, "service"), "|",
                        foreignId(e, "route"), "|", foreignId(e, "consumer"));
  }
  if (type == "targets") {
    return foreignId(e, "upstream") + "|" + str(e, "target");
  }
  if (type == "keyauth_credentials" || type == "jwt_secrets") {
    return str(e, "key");
  }
  if (type == "basicauth_credentials" || type == "hmacauth_credentials") {
    return str(e, "username");
  }
  if (type == "acls") {
    return foreignId(e, "consumer") + "|" + str(e, "group");
  }
  if (type == "ca_certificates") {
    return str(e, "cert_digest");
  }
  if (type == "certificates") {
    return str(e, "cert");
  }
  return "";
}

}  // namespace

// The form two entities are compared in: no timestamps, nothing the API adds on reads
// (a certificate's SNI names, which are entities of their own here), tags as a set.
Json compareForm(const std::string& type, Json e) {
  e.erase("created_at");
  e.erase("updated_at");
  if (type == "certificates") {
    e.erase("snis");
  }
  if (auto it = e.find("tags"); it != e.end() && it->is_array()) {
    std::sort(it->begin(), it->end());
  }
  return e;
}

namespace {

// Whether `have` (from the API) equals `want` (from the file) in compareForm's terms, without
// copying either (the plan of a 10,000-route diff compares 11,000 pairs).
bool sameStored(const std::string& type, const Json& have, const Json& want,
                const std::optional<std::string>& want_password) {
  const auto ignored = [&type](const std::string& key) {
    return key == "created_at" || key == "updated_at" ||
           (key == "snis" && type == "certificates");
  };
  size_t have_fields = 0;
  for (auto it = have.begin(); it != have.end(); ++it) {
    if (ignored(it.key())) {
      continue;
    }
    ++have_fields;
    auto w = want.find(it.key());
    if (w == want.end()) {
      return false;
    }
    if (want_password && it.key() == "password") {
      if (*it != Json(*want_password)) {
        return false;
      }
    } else if (it.key() == "tags" && it->is_array() && w->is_array()) {
      if (*it != *w &&
          compareForm("", Json{{"tags", *it}}) != compareForm("", Json{{"tags", *w}})) {
        return false;
      }
    } else if (*it != *w) {
      return false;
    }
  }
  size_t want_fields = 0;
  for (auto it = want.begin(); it != want.end(); ++it) {
    want_fields += ignored(it.key()) ? 0 : 1;
  }
  return have_fields == want_fields;
}

std::string compact(const Json& j) {
  std::string s = j.dump();
  if (s.size() > 160) {
    s = s.substr(0, 157) + "...";
  }
  return s;
}

// "field: old -> new" lines, nested records by dotted path.
void changedFields(const Json& from, const Json& to, const std::string& prefix, bool secret,
                   std::vector<std::string>* out) {
  std::set<std::string> keys;
  for (auto it = from.begin(); it != from.end(); ++it) {
    keys.insert(it.key());
  }
  for (auto it = to.begin(); it != to.end(); ++it) {
    keys.insert(it.key());
  }
  static const Json kNull;
  for (const std::string& k : keys) {
    auto a = from.find(k);
    auto b = to.find(k);
    const Json& va = a == from.end() ? kNull : *a;
    const Json& vb = b == to.end() ? kNull : *b;
    if (va == vb) {
      continue;
    }
    if (va.is_object() && vb.is_object()) {
      changedFields(va, vb, prefix + k + ".", secret, out);
      continue;
    }
    if (secret && (k == "password" || k == "secret" || k == "key")) {
      out->push_back(prefix + k + ": (secret changed)");
      continue;
    }
    out->push_back(prefix + k + ": " + compact(va) + " -> " + compact(vb));
  }
}

class Namer {
 public:
  void add(const std::string& type, const Json& e) {
    std::string name;
    if (type == "consumers") {
      name = str(e, "username");
      if (name.empty()) {
        name = str(e, "custom_id");
      }
    } else {
      name = str(e, "name");
    }
    if (!name.empty()) {
      names_[str(e, "id")] = name;
    }
  }
  std::string of(const std::string& id) const {
    auto it = names_.find(id);
    return it == names_.end() ? id : it->second;
  }
  std::string display(const std::string& type, const Json& e) const {
    const std::string id = str(e, "id");
    if (type == "plugins") {
      std::string scope;
      for (const char* f : {"service", "route", "consumer"}) {
        const std::string fid = foreignId(e, f);
        if (!fid.empty()) {
          absl::StrAppend(&scope, scope.empty() ? " for " : " and ", f, " ", of(fid));
        }
      }
      return str(e, "name") + (scope.empty() ? " (global)" : scope);
    }
    if (type == "targets") {
      return str(e, "target") + " on upstream " + of(foreignId(e, "upstream"));
    }
    if (type == "acls") {
      return str(e, "group") + " for consumer " + of(foreignId(e, "consumer"));
    }
    if (type.find("credentials") != std::string::npos || type == "jwt_secrets") {
      std::string who = str(e, "username");
      return (who.empty() ? id : who + " (" + id + ")") + " for consumer " +
             of(foreignId(e, "consumer"));
    }
    if (type == "consumers") {
      const std::string n = of(id);
      return n;
    }
    const std::string n = str(e, "name");
    return n.empty() ? id : n;
  }

 private:
  absl::flat_hash_map<std::string, std::string> names_;
};

}  // namespace

Plan makePlan(Desired& desired, const EntitySet& current) {
  Plan plan;
  Namer namer;
  for (size_t t = 0; t < kNumTypes; ++t) {
    for (const Json& e : current[t]) {
      namer.add(kTypes[t].type, e);
    }
  }
  // desired id -> current id, per type, for entities matched by natural key.
  std::array<absl::flat_hash_map<std::string, std::string>, kNumTypes> remap;
  for (size_t t = 0; t < kNumTypes; ++t) {
    const std::string type = kTypes[t].type;
    const config::EntitySchema* schema = config::findEntitySchema(type);
    std::vector<const config::Field*> foreign;
    if (schema != nullptr) {
      foreign = schema->foreignFields();
    }
    absl::flat_hash_map<std::string, size_t> cur_by_id;
    absl::flat_hash_map<std::string, size_t> cur_by_key;
    for (size_t i = 0; i < current[t].size(); ++i) {
      cur_by_id.emplace(str(current[t][i], "id"), i);
      std::string key = naturalKey(type, current[t][i]);
      if (!key.empty()) {
        cur_by_key.emplace(std::move(key), i);
      }
    }
    std::vector<bool> matched(current[t].size(), false);
    for (Json& e : desired.entities[t]) {
      for (const config::Field* f : foreign) {
        auto it = e.find(f->name);
        if (it == e.end() || !it->is_object()) {
          continue;
        }
        const int rt = typeIndex(f->reference);
        if (rt < 0) {
          continue;
        }
        const std::string fid = str(*it, "id");
        if (auto m = remap[static_cast<size_t>(rt)].find(fid);
            m != remap[static_cast<size_t>(rt)].end()) {
          (*it)["id"] = m->second;
        }
      }
      std::string id = str(e, "id");
      size_t idx = SIZE_MAX;
      if (auto it = cur_by_id.find(id); it != cur_by_id.end()) {
        idx = it->second;
      } else if (std::string key = naturalKey(type, e); !key.empty()) {
        if (auto k = cur_by_key.find(key); k != cur_by_key.end() && !matched[k->second]) {
          idx = k->second;
          const std::string cur_id = str(current[t][idx], "id");
          remap[t][id] = cur_id;
          e["id"] = cur_id;
          id = cur_id;
        }
      }
      namer.add(type, e);
      std::optional<std::string> password_hash;
      if (type == "basicauth_credentials" && desired.transform && e["password"].is_string()) {
        password_hash = config::basicAuthHash(e["password"].get<std::string>(),
                                              foreignId(e, "consumer"));
      }
      Op op;
      op.type = t;
      op.id = id;
      op.parent_id = type == "targets" ? foreignId(e, "upstream") : "";
      if (idx != SIZE_MAX) {
        matched[idx] = true;
        if (sameStored(type, current[t][idx], e, password_hash)) {
          continue;
        }
        Json have = compareForm(type, current[t][idx]);
        Json want = compareForm(type, e);
        if (password_hash) {
          want["password"] = *password_hash;
        }
        op.kind = Op::kUpdate;
        changedFields(have, want, "", type.find("credentials") != std::string::npos ||
                                          type == "jwt_secrets",
                      &op.changes);
        ++plan.updates;
      } else {
        op.kind = Op::kCreate;
        ++plan.creates;
      }
      if (type == "basicauth_credentials" && !desired.transform &&
          std::find_if(op.changes.begin(), op.changes.end(), [](const std::string& c) {
            return c.rfind("password", 0) == 0;
          }) != op.changes.end()) {
        op.error = "the file's password is a stored hash (_transform: false), which the Admin "
                   "API cannot take; give the plain password with _transform: true";
      } else if (type == "basicauth_credentials" && !desired.transform &&
                 op.kind == Op::kCreate) {
        op.error = "the file's password is a stored hash (_transform: false), which the Admin "
                   "API cannot take; give the plain password with _transform: true";
      }
      e.erase("created_at");
      e.erase("updated_at");
      if (type == "certificates") {
        e.erase("snis");  // a PUT with `snis` would replace the SNI entities synced on their own
      }
      op.body = std::move(e);
      plan.ops.push_back(std::move(op));
    }
    for (size_t i = 0; i < current[t].size(); ++i) {
      if (matched[i]) {
        continue;
      }
      Op op;
      op.kind = Op::kDelete;
      op.type = t;
      op.id = str(current[t][i], "id");
      op.parent_id = type == "targets" ? foreignId(current[t][i], "upstream") : "";
      op.display = namer.display(type, current[t][i]);
      ++plan.deletes;
      plan.ops.push_back(std::move(op));
    }
  }
  for (Op& op : plan.ops) {
    if (op.kind != Op::kDelete) {
      op.display = namer.display(kTypes[op.type].type, op.body);
    }
  }
  return plan;
}

int phaseOf(const Op& op) {
  const int level = kTypes[op.type].level;
  return op.kind == Op::kDelete ? kMaxLevel + 1 + (kMaxLevel - level) : level;
}

void sortPlan(Plan* plan) {
  std::sort(plan->ops.begin(), plan->ops.end(), [](const Op& a, const Op& b) {
    return std::forward_as_tuple(phaseOf(a), a.type, a.display, a.id) <
           std::forward_as_tuple(phaseOf(b), b.type, b.display, b.id);
  });
}

namespace {

const char* verb(Op::Kind k) {
  return k == Op::kCreate ? "creating" : k == Op::kUpdate ? "updating" : "deleting";
}

}  // namespace

std::string opLine(const Op& op) {
  return absl::StrCat(verb(op.kind), " ", kTypes[op.type].singular, " ", op.display);
}

}  // namespace portico::cli::online
