#include "cli/online.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/http_client.h"
#include "cli/yaml_writer.h"
#include "common/config/entities.h"
#include "common/config/kong_json.h"
#include "common/declarative/declarative.h"
#include "common/declarative/yaml_json.h"

namespace portico::cli {
namespace {

using Json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Entity types

struct TypeInfo {
  const char* type;      // schema / snapshot / declarative key
  const char* singular;  // for messages, as decK names them
  const char* path;      // Admin API collection ("" for targets: only under an upstream)
  int level;             // 0: no foreign keys; 1: references level 0; 2: plugins
};

// Parents before children; sync creates in this order and deletes in reverse.
constexpr TypeInfo kTypes[] = {
    {"services", "service", "services", 0},
    {"upstreams", "upstream", "upstreams", 0},
    {"consumers", "consumer", "consumers", 0},
    {"certificates", "certificate", "certificates", 0},
    {"ca_certificates", "ca_certificate", "ca_certificates", 0},
    {"routes", "route", "routes", 1},
    {"targets", "target", "", 1},
    {"snis", "sni", "snis", 1},
    {"keyauth_credentials", "key-auth", "key-auths", 1},
    {"basicauth_credentials", "basic-auth", "basic-auths", 1},
    {"jwt_secrets", "jwt", "jwts", 1},
    {"hmacauth_credentials", "hmac-auth", "hmac-auths", 1},
    {"acls", "acl", "acls", 1},
    {"plugins", "plugin", "plugins", 2},
};
constexpr size_t kNumTypes = sizeof(kTypes) / sizeof(kTypes[0]);
constexpr int kMaxLevel = 2;

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

using EntitySet = std::array<std::vector<Json>, kNumTypes>;

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

// ---------------------------------------------------------------------------------------------
// The Admin API: a pool of keep-alive clients, one per worker.

class Admin {
 public:
  Admin(HttpEndpoint endpoint, HttpOptions options, std::string prefix, int parallelism)
      : prefix_(std::move(prefix)) {
    for (int i = 0; i < std::max(1, parallelism); ++i) {
      clients_.push_back(std::make_unique<HttpClient>(endpoint, options));
    }
  }
  const std::string& prefix() const { return prefix_; }
  HttpClient& client(size_t worker) { return *clients_[worker]; }
  size_t workers() const { return clients_.size(); }

  // Runs fn(client, i) for i in [0, n) on up to workers() threads.
  template <class Fn>
  void parallelFor(size_t n, Fn&& fn) {
    const size_t threads = std::min(n, clients_.size());
    if (threads <= 1) {
      for (size_t i = 0; i < n; ++i) {
        fn(*clients_[0], i);
      }
      return;
    }
    std::atomic<size_t> next{0};
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (size_t w = 0; w < threads; ++w) {
      pool.emplace_back([&, w] {
        for (size_t i = next++; i < n; i = next++) {
          fn(*clients_[w], i);
        }
      });
    }
    for (auto& t : pool) {
      t.join();
    }
  }

 private:
  std::string prefix_;
  std::vector<std::unique_ptr<HttpClient>> clients_;
};

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

// ---------------------------------------------------------------------------------------------
// The desired state

// PORTICOCTL_TIMING=1 prints how long each step took to stderr (benchmarks).
class StepTimer {
 public:
  StepTimer() : on_(std::getenv("PORTICOCTL_TIMING") != nullptr), last_(now()) {}
  void step(const char* what) {
    if (on_) {
      const int64_t t = now();
      std::fprintf(stderr, "timing: %s %lld ms\n", what, static_cast<long long>(t - last_));
      last_ = t;
    }
  }

 private:
  static int64_t now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  bool on_;
  int64_t last_;
};

struct Desired {
  EntitySet entities;              // stored form, ids Kong's deterministic ones when not given
  bool transform = true;           // basic-auth passwords in the file are plain text
  std::vector<std::string> select_tags;
};

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

std::vector<std::string> sortedTags(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// The snapshot's entities in the Admin API's stored form (as POST /config stores them).
EntitySet storedEntities(const config::v1::Snapshot& snap) {
  EntitySet set;
  const google::protobuf::Descriptor* desc = snap.GetDescriptor();
  const google::protobuf::Reflection* refl = snap.GetReflection();
  for (size_t t = 0; t < kNumTypes; ++t) {
    std::vector<Json>& list = set[t];
    const std::string type = kTypes[t].type;
    if (type == "services") {
      list.reserve(static_cast<size_t>(snap.services_size()));
      for (const auto& s : snap.services()) {
        list.push_back(config::encodeService(s));
      }
    } else if (type == "routes") {
      list.reserve(static_cast<size_t>(snap.routes_size()));
      for (const auto& rt : snap.routes()) {
        list.push_back(config::encodeRoute(rt));
      }
    } else if (const google::protobuf::FieldDescriptor* f = desc->FindFieldByName(type)) {
      const int n = refl->FieldSize(snap, f);
      list.reserve(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) {
        list.push_back(config::protoToJson(refl->GetRepeatedMessage(snap, f, i)));
      }
    }
  }
  return set;
}

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
    declarative::YamlParse parsed = declarative::parseYaml(*text);
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
      if (*it != *w && compareForm("", Json{{"tags", *it}}) != compareForm("", Json{{"tags", *w}})) {
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

struct Op {
  enum Kind { kCreate, kUpdate, kDelete };
  Kind kind = kCreate;
  size_t type = 0;
  std::string id;
  std::string parent_id;  // targets: the upstream
  std::string display;    // "foo", "rate-limiting for service foo"
  Json body;              // create/update
  std::vector<std::string> changes;
  std::string error;      // refused at plan time
};

struct Plan {
  std::vector<Op> ops;
  std::vector<std::string> select_tags;
  size_t creates = 0, updates = 0, deletes = 0;
};

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

// Execution order, which is also the printed order: creates and updates parents first,
// then deletes children first; within a level by type, then name.
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

const char* verb(Op::Kind k) {
  return k == Op::kCreate ? "creating" : k == Op::kUpdate ? "updating" : "deleting";
}

std::string opLine(const Op& op) {
  return absl::StrCat(verb(op.kind), " ", kTypes[op.type].singular, " ", op.display);
}

void printSummary(FILE* out, size_t created, size_t updated, size_t deleted) {
  std::fprintf(out, "Summary:\n  Created: %zu\n  Updated: %zu\n  Deleted: %zu\n", created,
               updated, deleted);
}

// The collection an entity is created in (POST) and, with its id, its own path.
std::string collectionPath(const Admin& admin, const Op& op) {
  const TypeInfo& ti = kTypes[op.type];
  if (std::string_view(ti.type) == "targets") {
    return admin.prefix() + "/upstreams/" + uriEscape(op.parent_id) + "/targets";
  }
  return admin.prefix() + "/" + ti.path;
}

std::string entityPath(const Admin& admin, const Op& op) {
  return collectionPath(admin, op) + "/" + uriEscape(op.id);
}

// Applies the plan phase by phase (a phase's ops run concurrently); stops after a phase
// with a failure, since later phases depend on it. Returns the number of failures.
size_t applyPlan(Admin& admin, const Plan& plan, bool selected, FILE* out, FILE* err,
                 size_t* done_counts) {
  std::mutex mu;
  size_t failures = 0;
  size_t begin = 0;
  while (begin < plan.ops.size()) {
    const int phase = phaseOf(plan.ops[begin]);
    size_t end = begin;
    while (end < plan.ops.size() && phaseOf(plan.ops[end]) == phase) {
      ++end;
    }
    std::vector<uint8_t> outcome(end - begin, 0);  // 0 running, 1 done, 2 failed
    std::vector<std::string> problems(end - begin);
    size_t printed = 0;
    admin.parallelFor(end - begin, [&](HttpClient& c, size_t k) {
      const Op& op = plan.ops[begin + k];
      // Creates POST with the planned id (the Admin API then skips PUT's lookup of an
      // existing entity; a replayed POST with the same id is recognised by the CP); updates
      // PUT the whole entity.
      absl::StatusOr<HttpResponse> r;
      if (op.kind == Op::kDelete) {
        r = c.request("DELETE", entityPath(admin, op));
      } else if (op.kind == Op::kCreate) {
        r = c.request("POST", collectionPath(admin, op), op.body.dump());
      } else {
        r = c.request("PUT", entityPath(admin, op), op.body.dump());
      }
      std::string problem;
      if (!r.ok()) {
        problem = std::string(r.status().message());
      } else if (op.kind == Op::kDelete ? (r->status != 204 && r->status != 404 &&
                                           r->status != 200)
                                        : (r->status != 200 && r->status != 201)) {
        problem = describeAnswer(*r);
        if (selected && op.kind == Op::kCreate &&
            problem.find("violation") != std::string::npos) {
          problem += " (an entity with this id or name exists without the select tags: "
                     "another team's, or one to tag first)";
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      outcome[k] = problem.empty() ? 1 : 2;
      if (!problem.empty()) {
        problems[k] = std::move(problem);
      }
      // Lines come out in plan order (stable output), each as soon as every op before it in
      // the phase finished.
      for (; printed < outcome.size() && outcome[printed] != 0; ++printed) {
        const Op& p = plan.ops[begin + printed];
        if (outcome[printed] == 1) {
          ++done_counts[p.kind];
          std::fprintf(out, "%s\n", opLine(p).c_str());
        } else {
          ++failures;
          std::fprintf(err, "Error: %s: %s\n", opLine(p).c_str(), problems[printed].c_str());
        }
      }
    });
    std::fflush(out);
    if (failures > 0) {
      return failures;
    }
    begin = end;
  }
  return failures;
}

// ---------------------------------------------------------------------------------------------
// Commands

std::optional<Admin> connect(const OnlineOptions& o, FILE* err) {
  absl::StatusOr<HttpEndpoint> ep = parseHttpUrl(o.kong_addr);
  if (!ep.ok()) {
    std::fprintf(err, "porticoctl: --kong-addr %s\n", std::string(ep.status().message()).c_str());
    return std::nullopt;
  }
  HttpOptions ho;
  ho.headers = o.headers;
  ho.io_timeout_ms = o.timeout_s * 1000;
  ho.connect_timeout_ms = std::min(ho.io_timeout_ms, 10000);
  std::string prefix;
  if (!o.control_plane.empty()) {
    prefix = "/control-planes/" + uriEscape(o.control_plane);
  }
  return std::optional<Admin>(std::in_place, *ep, ho, prefix, o.parallelism);
}

// GET / (and the control plane when one is named): the error line for an unreachable or
// refusing Admin API, or "" and the root answer in *root.
std::string checkReachable(Admin& admin, const OnlineOptions& o, Json* root) {
  absl::StatusOr<HttpResponse> r = admin.client(0).request("GET", "/");
  if (!r.ok()) {
    return absl::StrCat("cannot reach the Admin API at ", o.kong_addr, ": ",
                        r.status().message());
  }
  if (r->status != 200) {
    return absl::StrCat("GET ", o.kong_addr, "/: ", describeAnswer(*r));
  }
  *root = Json::parse(r->body, nullptr, false);
  if (!root->is_object()) {
    return absl::StrCat(o.kong_addr, " did not answer GET / as Kong's Admin API does");
  }
  if (!o.control_plane.empty()) {
    absl::StatusOr<HttpResponse> g = admin.client(0).request("GET", admin.prefix());
    if (!g.ok()) {
      return std::string(g.status().message());
    }
    if (g->status == 404) {
      return "control plane '" + o.control_plane + "' not found";
    }
    if (g->status != 200) {
      return absl::StrCat("GET ", admin.prefix(), ": ", describeAnswer(*g));
    }
  }
  return "";
}

// Loads the desired state and the current one and compares them.
std::optional<Plan> planFor(const OnlineOptions& o, Admin& admin, FILE* err) {
  StepTimer timer;
  if (o.states.empty()) {
    std::fprintf(err, "porticoctl: give the desired state with -s/--state FILE\n");
    return std::nullopt;
  }
  // The current state is read while the files load: the fetch mostly waits for the CP.
  std::thread fetcher;
  std::optional<absl::StatusOr<EntitySet>> current;
  std::string unreachable;
  std::optional<Desired> desired =
      loadDesired(o, err, [&](const std::vector<std::string>& tags) {
        fetcher = std::thread([&admin, &o, &current, &unreachable, tags] {
          Json root;
          unreachable = checkReachable(admin, o, &root);
          if (unreachable.empty()) {
            current = fetchCurrent(admin, tags);
          }
        });
      });
  if (fetcher.joinable()) {
    fetcher.join();
  }
  if (!desired) {
    return std::nullopt;
  }
  timer.step("load files and fetch current");
  if (!unreachable.empty()) {
    std::fprintf(err, "Error: %s\n", unreachable.c_str());
    return std::nullopt;
  }
  if (!current->ok()) {
    std::fprintf(err, "Error: reading the current configuration: %s\n",
                 std::string(current->status().message()).c_str());
    return std::nullopt;
  }
  Plan plan = makePlan(*desired, **current);
  plan.select_tags = desired->select_tags;
  sortPlan(&plan);
  timer.step("plan");
  // Left allocated on purpose: the command ends right after, and freeing some 20,000 JSON
  // trees took 80 ms of a 10,000-route diff's 640.
  (void)new std::optional<Desired>(std::move(desired));
  (void)new std::optional<absl::StatusOr<EntitySet>>(std::move(current));
  return plan;
}

// Removes null fields (recursively in records) for a readable dump.
void dropNulls(Json& j) {
  if (!j.is_object()) {
    return;
  }
  for (auto it = j.begin(); it != j.end();) {
    if (it->is_null()) {
      it = j.erase(it);
    } else {
      dropNulls(*it);
      ++it;
    }
  }
}

}  // namespace

std::string parseOnlineArgs(std::string_view command, const std::vector<std::string_view>& args,
                            OnlineOptions* o) {
  if (const char* env = std::getenv("PORTICO_ADDR"); env != nullptr && *env != '\0') {
    o->kong_addr = env;
  } else {
    o->kong_addr = kDefaultKongAddr;
  }
  const bool takes_state = command == "diff" || command == "sync";
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    std::string_view value;
    bool has_value = false;
    if (a.rfind("--", 0) == 0) {
      if (const size_t eq = a.find('='); eq != std::string_view::npos) {
        value = a.substr(eq + 1);
        a = a.substr(0, eq);
        has_value = true;
      }
    }
    const auto need = [&](std::string* err) -> bool {
      if (has_value) {
        return true;
      }
      if (i + 1 == args.size()) {
        *err = std::string(a) + " needs a value";
        return false;
      }
      value = args[++i];
      return true;
    };
    std::string err;
    if (takes_state && (a == "-s" || a == "--state")) {
      if (!need(&err)) {
        return err;
      }
      o->states.emplace_back(value);
    } else if (a == "--kong-addr") {
      if (!need(&err)) {
        return err;
      }
      o->kong_addr = std::string(value);
    } else if (a == "--headers" || a == "-H") {
      if (!need(&err)) {
        return err;
      }
      const size_t colon = value.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        return "--headers '" + std::string(value) + "': expected 'Name:value'";
      }
      std::string_view v = value.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
        v.remove_prefix(1);
      }
      if (value.find_first_of("\r\n") != std::string_view::npos) {
        return "--headers: no line breaks allowed";
      }
      o->headers.emplace_back(std::string(value.substr(0, colon)), std::string(v));
    } else if (command != "ping" && a == "--select-tag") {
      if (!need(&err)) {
        return err;
      }
      if (value.empty()) {
        return "--select-tag needs a non-empty tag";
      }
      o->select_tags.emplace_back(value);
    } else if (a == "--control-plane") {
      if (!need(&err)) {
        return err;
      }
      o->control_plane = std::string(value);
    } else if (command == "dump" && (a == "-o" || a == "--output-file")) {
      if (!need(&err)) {
        return err;
      }
      o->output = std::string(value);
    } else if (command == "diff" && a == "--non-zero-exit-code") {
      o->non_zero_exit_code = true;
    } else if (command == "reset" && (a == "--force" || a == "-f")) {
      o->force = true;
    } else if (command != "ping" && a == "--parallelism") {
      if (!need(&err)) {
        return err;
      }
      int n = 0;
      if (!absl::SimpleAtoi(absl::string_view(value.data(), value.size()), &n) || n < 1 ||
          n > 256) {
        return "--parallelism needs a number from 1 to 256";
      }
      o->parallelism = n;
    } else if (a == "--timeout") {
      if (!need(&err)) {
        return err;
      }
      int n = 0;
      if (!absl::SimpleAtoi(absl::string_view(value.data(), value.size()), &n) || n < 1) {
        return "--timeout needs a number of seconds";
      }
      o->timeout_s = n;
    } else {
      return std::string(command) + ": unknown option '" + std::string(args[i]) + "'";
    }
  }
  return "";
}

int runPing(const OnlineOptions& o, FILE* out, FILE* err) {
  std::optional<Admin> admin = connect(o, err);
  if (!admin) {
    return 1;
  }
  Json root;
  if (std::string problem = checkReachable(*admin, o, &root); !problem.empty()) {
    std::fprintf(err, "Error: %s\n", problem.c_str());
    return 1;
  }
  std::fprintf(out, "Successfully connected to the Admin API at %s\nKong version: %s\n",
               o.kong_addr.c_str(), str(root, "version").c_str());
  if (const std::string own = str(root, "portico_version"); !own.empty()) {
    std::fprintf(out, "Portico version: %s\n", own.c_str());
  }
  return 0;
}

int runDump(const OnlineOptions& o, FILE* out, FILE* err) {
  std::optional<Admin> admin = connect(o, err);
  if (!admin) {
    return 1;
  }
  Json root;
  if (std::string problem = checkReachable(*admin, o, &root); !problem.empty()) {
    std::fprintf(err, "Error: %s\n", problem.c_str());
    return 1;
  }
  const std::vector<std::string> tags = sortedTags(o.select_tags);
  absl::StatusOr<EntitySet> current = fetchCurrent(*admin, tags);
  if (!current.ok()) {
    std::fprintf(err, "Error: reading the configuration: %s\n",
                 std::string(current.status().message()).c_str());
    return 1;
  }
  Json doc = Json::object();
  doc["_format_version"] = "3.0";
  if (!tags.empty()) {
    doc["_info"] = Json{{"select_tags", tags}};
  }
  // Basic-auth passwords are stored hashed: say so, as Kong's own export does.
  if (!(*current)[static_cast<size_t>(typeIndex("basicauth_credentials"))].empty()) {
    doc["_transform"] = false;
  }
  size_t total = 0;
  for (size_t t = 0; t < kNumTypes; ++t) {
    std::vector<Json>& list = (*current)[t];
    if (list.empty()) {
      continue;
    }
    std::sort(list.begin(), list.end(), [](const Json& a, const Json& b) {
      return str(a, "id") < str(b, "id");
    });
    Json arr = Json::array();
    for (Json& e : list) {
      e = compareForm(kTypes[t].type, std::move(e));
      dropNulls(e);
      arr.push_back(std::move(e));
    }
    total += list.size();
    doc[kTypes[t].type] = std::move(arr);
  }
  const bool json_out =
      o.output.size() >= 5 && o.output.compare(o.output.size() - 5, 5, ".json") == 0;
  std::string text;
  if (json_out) {
    text = doc.dump(2) + "\n";
  } else {
    text = toYaml(doc);
  }
  if (o.output == "-") {
    std::fwrite(text.data(), 1, text.size(), out);
    return 0;
  }
  const std::string tmp = o.output + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    f.close();
    if (!f) {
      std::fprintf(err, "Error: cannot write %s\n", tmp.c_str());
      std::remove(tmp.c_str());
      return 1;
    }
  }
  if (std::rename(tmp.c_str(), o.output.c_str()) != 0) {
    std::fprintf(err, "Error: cannot write %s: %s\n", o.output.c_str(), std::strerror(errno));
    std::remove(tmp.c_str());
    return 1;
  }
  std::fprintf(err, "Wrote %zu entities to %s\n", total, o.output.c_str());
  return 0;
}

int runDiff(const OnlineOptions& o, FILE* out, FILE* err) {
  std::optional<Admin> admin = connect(o, err);
  if (!admin) {
    return 1;
  }
  std::optional<Plan> plan = planFor(o, *admin, err);
  if (!plan) {
    return 1;
  }
  int refused = 0;
  for (const Op& op : plan->ops) {
    std::fprintf(out, "%s\n", opLine(op).c_str());
    for (const std::string& c : op.changes) {
      std::fprintf(out, "    %s\n", c.c_str());
    }
    if (!op.error.empty()) {
      std::fprintf(err, "Error: %s: %s\n", opLine(op).c_str(), op.error.c_str());
      ++refused;
    }
  }
  printSummary(out, plan->creates, plan->updates, plan->deletes);
  if (refused > 0) {
    return 1;
  }
  return o.non_zero_exit_code && !plan->ops.empty() ? 2 : 0;
}

int runSync(const OnlineOptions& o, FILE* out, FILE* err) {
  std::optional<Admin> admin = connect(o, err);
  if (!admin) {
    return 1;
  }
  std::optional<Plan> plan = planFor(o, *admin, err);
  if (!plan) {
    return 1;
  }
  bool refused = false;
  for (const Op& op : plan->ops) {
    if (!op.error.empty()) {
      std::fprintf(err, "Error: %s: %s\n", opLine(op).c_str(), op.error.c_str());
      refused = true;
    }
  }
  if (refused) {
    std::fprintf(err, "Nothing was changed.\n");
    return 1;
  }
  size_t done[3] = {0, 0, 0};
  StepTimer timer;
  const size_t failures =
      applyPlan(*admin, *plan, !plan->select_tags.empty(), out, err, done);
  timer.step("apply");
  printSummary(out, done[Op::kCreate], done[Op::kUpdate], done[Op::kDelete]);
  if (failures > 0) {
    std::fprintf(err, "Error: %zu of %zu changes failed; the later steps were not run\n",
                 failures, plan->ops.size());
    return 1;
  }
  return 0;
}

int runReset(const OnlineOptions& o, FILE* out, FILE* err) {
  std::optional<Admin> admin = connect(o, err);
  if (!admin) {
    return 1;
  }
  Json root;
  if (std::string problem = checkReachable(*admin, o, &root); !problem.empty()) {
    std::fprintf(err, "Error: %s\n", problem.c_str());
    return 1;
  }
  const std::vector<std::string> tags = sortedTags(o.select_tags);
  absl::StatusOr<EntitySet> current = fetchCurrent(*admin, tags);
  if (!current.ok()) {
    std::fprintf(err, "Error: reading the configuration: %s\n",
                 std::string(current.status().message()).c_str());
    return 1;
  }
  Desired empty;
  empty.select_tags = tags;
  Plan plan = makePlan(empty, *current);
  sortPlan(&plan);
  if (plan.ops.empty()) {
    printSummary(out, 0, 0, 0);
    return 0;
  }
  if (!o.force) {
    const std::string what =
        tags.empty() ? "every entity" : "every entity tagged " + absl::StrJoin(tags, ", ");
    if (!isatty(STDIN_FILENO)) {
      std::fprintf(err,
                   "Error: reset deletes %s (%zu entities) on %s%s; run it with --force when "
                   "not interactive\n",
                   what.c_str(), plan.ops.size(), o.kong_addr.c_str(), admin->prefix().c_str());
      return 1;
    }
    std::fprintf(out, "This deletes %s (%zu entities) on %s%s. Are you sure? [y/N] ",
                 what.c_str(), plan.ops.size(), o.kong_addr.c_str(), admin->prefix().c_str());
    std::fflush(out);
    char answer[16] = {0};
    if (std::fgets(answer, sizeof(answer), stdin) == nullptr ||
        (answer[0] != 'y' && answer[0] != 'Y')) {
      std::fprintf(out, "Nothing was deleted.\n");
      return 1;
    }
  }
  size_t done[3] = {0, 0, 0};
  const size_t failures = applyPlan(*admin, plan, false, out, err, done);
  printSummary(out, done[Op::kCreate], done[Op::kUpdate], done[Op::kDelete]);
  return failures > 0 ? 1 : 0;
}

}  // namespace portico::cli
