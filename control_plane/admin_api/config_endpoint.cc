#include "control_plane/admin_api/config_endpoint.h"

#include <algorithm>
#include <cctype>
#include <future>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "common/clock.h"
#include "common/config/entities.h"
#include "common/config/json_limits.h"
#include "common/config/proto_json.h"
#include "common/declarative/declarative.h"
#include "common/logging.h"
#include "control_plane/admin_api/form.h"

namespace portico::cp {
namespace config_endpoint {
namespace {

using config::Json;
namespace v1 = config::v1;

constexpr char kExpected[] = "expected a declarative configuration";
constexpr char kMethodNotAllowed[] = "Method not allowed";

ApiResponse jsonAnswer(int status, const Json& body) { return {status, body.dump()}; }

// (absl's string functions take absl::string_view, which is not std::string_view here.)
std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Kong's truthy() for flatten_errors: "true", "1", "on", "yes" (any case), true or 1.
bool truthy(const Json& v) {
  if (v.is_string()) {
    const std::string s = lower(v.get<std::string>());
    return s == "true" || s == "1" || s == "on" || s == "yes";
  }
  return v == Json(true) || v == Json(1);
}

// Kong's check_hash test, older than truthy(): tostring(value) == "1".
bool isOne(const Json& v) { return v == Json("1") || v == Json(1); }

// What POST /config was given: the file's text and the two options, wherever they came from
// (query string or body, as Kong merges them into its params).
struct Upload {
  std::string text;
  bool flatten_errors = false;
  bool check_hash = false;
};

// multipart/form-data (`curl -F config=@kong.yml`, Kong's documented way): the parts named
// config, flatten_errors and check_hash. nullopt for a body that is not well-formed.
std::optional<std::map<std::string, std::string>> parseMultipart(std::string_view content_type,
                                                                std::string_view body) {
  const size_t b = lower(content_type).find("boundary=");
  if (b == std::string::npos) {
    return std::nullopt;
  }
  std::string_view boundary = content_type.substr(b + 9);
  boundary = boundary.substr(0, boundary.find(';'));
  if (boundary.size() >= 2 && boundary.front() == '"' && boundary.back() == '"') {
    boundary = boundary.substr(1, boundary.size() - 2);
  }
  if (boundary.empty()) {
    return std::nullopt;
  }
  const std::string delimiter = "--" + std::string(boundary);
  std::map<std::string, std::string> out;
  size_t pos = body.find(delimiter);
  if (pos == std::string_view::npos) {
    return std::nullopt;
  }
  while (true) {
    pos += delimiter.size();
    if (body.substr(pos, 2) == "--") {
      return out;  // the closing delimiter
    }
    const size_t head_end = body.find("\r\n\r\n", pos);
    if (head_end == std::string_view::npos) {
      return std::nullopt;
    }
    const std::string_view head = body.substr(pos, head_end - pos);
    const size_t data = head_end + 4;
    const size_t next = body.find("\r\n" + delimiter, data);
    if (next == std::string_view::npos) {
      return std::nullopt;
    }
    const std::string head_lc = lower(head);
    const size_t name_at = head_lc.find("name=\"");
    if (name_at != std::string::npos) {
      const size_t name_end = head.find('"', name_at + 6);
      if (name_end != std::string_view::npos) {
        out[std::string(head.substr(name_at + 6, name_end - name_at - 6))] =
            std::string(body.substr(data, next - data));
      }
    }
    pos = next + 2;
  }
}

// The upload in `req`, or the 400 that answers it.
std::optional<ApiResponse> readUpload(const ApiRequest& req,
                                      const std::map<std::string, std::string>& query,
                                      Upload* up) {
  Json params = Json::object();  // Kong's self.params, as far as /config reads them
  for (const char* key : {"flatten_errors", "check_hash"}) {
    if (auto it = query.find(key); it != query.end()) {
      params[key] = it->second;
    }
  }
  const std::string ct = lower(req.content_type);
  bool raw = true;  // the body itself is the file
  if (absl::StrContains(ct, "application/x-www-form-urlencoded")) {
    std::string error;
    std::optional<Json> form = parseKongForm(req.body, &error);
    if (!form) {
      return jsonAnswer(400, Json{{"message", "Cannot parse form body: " + error}});
    }
    params.update(*form);
    raw = false;
  } else if (absl::StrContains(ct, "multipart/form-data")) {
    auto parts = parseMultipart(req.content_type, req.body);
    if (!parts) {
      return jsonAnswer(400, Json{{"message", "Cannot parse multipart form body"}});
    }
    for (auto& [k, v] : *parts) {
      params[k] = std::move(v);
    }
    raw = false;
  } else if (ct.empty() || absl::StrContains(ct, "json")) {
    // A JSON object with `config` (the file as a string, or as an object) or the file itself.
    // Anything else, including JSON that does not parse (YAML sent as JSON), is the file as
    // written: the loader reports what is wrong with it, with its line.
    bool too_deep = false;
    std::optional<Json> body =
        config::parseUntrustedJson(req.body, declarative::LoadOptions{}.max_depth, &too_deep);
    if (body && body->is_object()) {
      bool options_in_body = false;
      for (const char* key : {"flatten_errors", "check_hash"}) {
        if (auto it = body->find(key); it != body->end()) {
          params[key] = *it;
          body->erase(it);
          options_in_body = true;
        }
      }
      if (auto it = body->find("config"); it != body->end() && !body->contains("_format_version")) {
        if (it->is_string()) {
          up->text = it->get<std::string>();
        } else if (it->is_object()) {
          up->text = it->dump();
        } else {
          return jsonAnswer(400, Json{{"message", kExpected}});
        }
        raw = false;
      } else if (options_in_body) {
        up->text = body->dump();  // Kong drops the options before it reads the file
        raw = false;
      }
    }
  }
  if (raw) {
    up->text = req.body;
  } else if (up->text.empty()) {
    if (auto it = params.find("config"); it != params.end() && it->is_string()) {
      up->text = it->get<std::string>();
    }
  }
  if (up->text.find_first_not_of(" \t\r\n") == std::string::npos) {
    return jsonAnswer(400, Json{{"message", kExpected}});
  }
  up->flatten_errors = params.contains("flatten_errors") && truthy(params["flatten_errors"]);
  up->check_hash = params.contains("check_hash") && isOne(params["check_hash"]);
  return std::nullopt;
}

// The snapshot's entities in the Admin API's stored form, by type.
std::vector<TypedEntities> storedForm(v1::Snapshot& snap) {
  std::vector<TypedEntities> out;
  const google::protobuf::Descriptor* d = snap.GetDescriptor();
  const google::protobuf::Reflection* refl = snap.GetReflection();
  for (const std::string& type : PgConfigStore::typesParentsFirst()) {
    TypedEntities t{type, {}};
    if (const google::protobuf::FieldDescriptor* f = d->FindFieldByName(type)) {
      const int n = refl->FieldSize(snap, f);
      t.entities.reserve(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) {
        t.entities.push_back(config::protoToJson(refl->GetRepeatedMessage(snap, f, i)));
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

ApiResponse postConfig(PgConfigStore& store, const ApiRequest& req,
                       const std::map<std::string, std::string>& query, const std::string& group,
                       const std::function<ApiResponse(const absl::Status&)>& status_response) {
  Upload up;
  if (auto err = readUpload(req, query, &up)) {
    return *err;
  }
  const uint64_t t0 = steadyMs();
  declarative::LoadOptions options;
  options.group = group;
  options.max_threads = 1;  // main.cc: one malloc arena for all threads
  // The replace starts on its own thread as soon as the file's ids are known: it takes the
  // group's lock and deletes what the new config lacks while this thread validates, then
  // waits for the entities (or null: the file was invalid, and it rolls back).
  std::promise<std::vector<TypedEntities>*> ready;
  std::shared_future<std::vector<TypedEntities>*> validated = ready.get_future().share();
  bool ready_set = false;
  std::thread replace;
  absl::StatusOr<ReplaceOutcome> outcome = absl::UnknownError("not run");
  options.on_ids = [&](PgConfigStore::EntityIds ids) {
    replace = std::thread([&store, &group, &outcome, &validated, ids = std::move(ids)] {
      outcome = store.replaceConfigEarly(group, ids, [&validated] { return validated.get(); });
    });
  };
  const auto finish = [&](std::vector<TypedEntities>* entities) {
    if (!ready_set) {
      ready_set = true;
      ready.set_value(entities);
    }
    if (replace.joinable()) {
      replace.join();
    }
  };
  absl::Cleanup never_leave_it_waiting = [&] { finish(nullptr); };
  declarative::LoadResult loaded = declarative::loadDeclarative(up.text, options);
  if (!loaded.ok()) {
    finish(nullptr);
    Json body = loaded.errorBody();
    if (!up.flatten_errors) {
      body.erase("flattened_errors");  // Kong 3.x adds it only when asked
    }
    return jsonAnswer(400, body);
  }
  up.text.clear();
  up.text.shrink_to_fit();
  const uint64_t t1 = steadyMs();
  std::vector<TypedEntities> entities = storedForm(loaded.snapshot);
  // Freed now, before the store runs, whose allocations reuse this memory: kept until later
  // (tried with LoadOptions::keep_scratch), they ran on fresh pages (storedForm 50 -> 220 ms,
  // the store +200 ms for 10,000 routes).
  loaded.snapshot.Clear();
  const uint64_t t2 = steadyMs();
  if (replace.joinable()) {
    finish(&entities);
  } else {
    outcome = store.replaceConfig(group, &entities);  // a loader that never reported ids
  }
  const uint64_t t3 = steadyMs();
  if (!outcome.ok()) {
    const absl::Status& st = outcome.status();
    if (absl::IsAlreadyExists(st) || absl::IsFailedPrecondition(st)) {
      // The loader checks what Kong's declarative schema checks; a database constraint it
      // does not know of refused the file. Nothing was written.
      LOG_WARN("admin", "POST /config of group '%s' refused by the database: %s", group,
               st.message());
      const std::string what = absl::IsAlreadyExists(st) ? "a uniqueness rule"
                                                         : "a reference rule";
      return jsonAnswer(400, Json{{"code", 14},
                                  {"name", "invalid declarative configuration"},
                                  {"message", "declarative config is invalid: it breaks " + what +
                                                  " of the database"},
                                  {"fields", Json::object()}});
    }
    if (isCommitOutcomeUnknown(st)) {
      LOG_ERROR("admin", "POST /config of group '%s': %s", group, st.message());
      return jsonAnswer(503, Json{{"message", "The database connection was lost while committing "
                                              "this configuration, and whether it was applied is "
                                              "unknown. Check with GET /config; posting the same "
                                              "file again is safe."},
                                  {"outcome", "unknown"}});
    }
    return status_response(st);
  }
  LOG_INFO("admin",
           "POST /config: group '%s' %s (generation %d, %d written, %d deleted; loaded in %d ms, "
           "encoded in %d ms, stored in %d ms)",
           group, outcome->changed ? "replaced" : "unchanged", outcome->generation,
           outcome->upserted, outcome->deleted, t1 - t0, t2 - t1, t3 - t2);
  if (up.check_hash && !outcome->changed) {
    return {304, ""};
  }
  // Kong answers the loaded entities by type, each type an object keyed by id.
  std::string body = "{";
  bool first_type = true;
  for (const TypedEntities& t : entities) {
    if (t.entities.empty()) {
      continue;
    }
    body += first_type ? "" : ",";
    first_type = false;
    body += Json(t.type).dump();
    body += ":{";
    for (size_t i = 0; i < t.entities.size(); ++i) {
      const Json& e = t.entities[i];
      body += i == 0 ? "" : ",";
      body += e["id"].dump();
      body += ':';
      body += i < t.stored_text.size() ? t.stored_text[i] : e.dump();
    }
    body += '}';
  }
  body += '}';
  return {201, std::move(body)};
}

ApiResponse getConfig(PgConfigStore& store, const std::string& group,
                      const std::function<ApiResponse(const absl::Status&)>& status_response) {
  absl::StatusOr<ConfigExport> exported = store.exportConfig(group);
  if (!exported.ok()) {
    return status_response(exported.status());
  }
  // Kong's export (kong/db/declarative/export.lua): format 3.0, `_transform: false` (stored
  // secrets such as basic-auth passwords are hashes already), every type parents first, each
  // entity with every field. JSON text, which is YAML too; foreign keys stay {"id": ...},
  // which the format takes as well as Kong's bare id.
  std::string doc = R"({"_format_version":"3.0","_transform":false)";
  for (const auto& [type, rows] : exported->by_type) {
    if (rows.empty()) {
      continue;
    }
    doc += ',';
    doc += Json(type).dump();
    doc += ":[";
    for (size_t i = 0; i < rows.size(); ++i) {
      doc += i == 0 ? "" : ",";
      doc += rows[i];
    }
    doc += ']';
  }
  doc += '}';
  return {200, Json{{"config", std::move(doc)}}.dump()};
}

}  // namespace
}  // namespace config_endpoint

bool isConfigUpload(std::string_view method, std::string_view target) {
  if (method != "POST") {
    return false;
  }
  const std::string_view path = target.substr(0, target.find('?'));
  if (path == "/config" || path == "/config/") {
    return true;
  }
  // /control-planes/{id or name}/config
  constexpr std::string_view kGroups = "/control-planes/";
  if (path.substr(0, kGroups.size()) != kGroups) {
    return false;
  }
  std::string_view rest = path.substr(kGroups.size());
  if (!rest.empty() && rest.back() == '/') {
    rest.remove_suffix(1);
  }
  const size_t slash = rest.find('/');
  return slash != std::string_view::npos && slash > 0 && rest.substr(slash) == "/config";
}

ApiResponse handleConfigEndpoint(PgConfigStore& store, const ApiRequest& req,
                                 const std::map<std::string, std::string>& query,
                                 const std::string& group,
                                 const std::function<ApiResponse(const absl::Status&)>&
                                     status_response) {
  if (req.method == "GET") {
    return config_endpoint::getConfig(store, group, status_response);
  }
  if (req.method == "POST") {
    return config_endpoint::postConfig(store, req, query, group, status_response);
  }
  return {405, config::Json{{"message", config_endpoint::kMethodNotAllowed}}.dump()};
}

}  // namespace portico::cp
