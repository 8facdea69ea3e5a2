// ServiceHub's catalog (issue 14, part 2) under /service-catalog/ on the Admin listener, at
// the root only: the catalog spans control planes.
//   /service-catalog/services[?q=&label=&owner=&page[size]=&page[number]=]   GET, POST
//   /service-catalog/services/{id or name}                                   GET, PATCH, DELETE
//   /service-catalog/services/{svc}/versions                                 GET, POST
//   /service-catalog/services/{svc}/versions/{id or version}                 GET, PATCH, DELETE
//   /service-catalog/services/{svc}/versions/{ver}/spec                      GET (the document)
//   /service-catalog/services/{svc}/dependencies[?direction=&source=&start=&end=&granularity=]
//                                                                            GET, POST
//   /service-catalog/services/{svc}/dependencies/{id or name}                GET, DELETE
//   /service-catalog/services/{svc}/usage, .../versions/{ver}/usage          GET
// Dependencies are declared (POST) or observed: a service's `calls_as` names the gateway
// consumers it calls other services as, and the vitals' per-consumer counts show which
// gateway services, bound to which other catalog services' versions, those consumers call.
// Lists have Konnect's shape; bad input gets Kong's schema-violation body naming the field.
// Text is stored as given (rendering it safely is the reader's job) but control characters
// are refused, and links must be http(s) URLs (a javascript: link would run in a console).
#include <algorithm>
#include <ctime>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/vitals/latency_bins.h"
#include "control_plane/admin_api/admin_util.h"
#include "control_plane/admin_api/catalog_openapi.h"
#include "control_plane/admin_api/endpoints.h"
#include "control_plane/portal/provisioning.h"
#include "control_plane/store/pg_catalog.h"

namespace portico::cp::admin {
namespace catalog_api {
namespace {

constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxDescriptionLength = 10000;
constexpr size_t kMaxUrlLength = 2048;
constexpr size_t kMaxLabels = 50;
constexpr size_t kMaxLabelLength = 63;
constexpr size_t kMaxVersionLength = 100;
constexpr size_t kMaxBindings = 100;  // gateway_services of a version, calls_as of a service
constexpr size_t kMaxQueryLength = 1000;

class Errors {
 public:
  void add(std::string field, std::string reason) {
    list_.push_back({"", "", std::move(field), std::move(reason)});
  }
  bool empty() const { return list_.empty(); }
  ApiResponse response() const { return schemaViolation(list_); }

 private:
  config::FieldErrors list_;
};

// C0 controls and DEL, and the C1 controls (U+0080-U+009F, UTF-8 C2 80-9F); with
// `multiline`, tab, LF and CR pass.
bool hasControlCharacter(const std::string& s, bool multiline) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && !(multiline && (c == '\t' || c == '\n' || c == '\r'))) || c == 0x7f) {
      return true;
    }
    if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
      return true;
    }
  }
  return false;
}

size_t utf8Length(const std::string& s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }));
}

// A text field: absent leaves *out alone; null clears it when `nullable`.
void readText(const Json& body, const char* field, size_t max, bool multiline, bool nullable,
              Errors* errors, std::optional<std::string>* out) {
  auto it = body.find(field);
  if (it == body.end()) {
    return;
  }
  if (it->is_null() && nullable) {
    out->reset();
    return;
  }
  if (!it->is_string()) {
    errors->add(field, "expected a string");
    return;
  }
  const std::string& s = it->get_ref<const std::string&>();
  if (s.empty() || utf8Length(s) > max) {
    errors->add(field, absl::StrCat("length must be between 1 and ", max, " characters"));
  } else if (hasControlCharacter(s, multiline)) {
    errors->add(field, "must not contain control characters");
  } else {
    *out = s;
  }
}

// An http(s) URL with a host, no spaces or control characters.
bool isWebUrl(const std::string& s) {
  const size_t scheme = s.rfind("https://", 0) == 0 ? 8 : s.rfind("http://", 0) == 0 ? 7 : 0;
  if (scheme == 0 || s.size() == scheme || s[scheme] == '/' || s.size() > kMaxUrlLength) {
    return false;
  }
  return std::none_of(s.begin(), s.end(),
                      [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; });
}

Json optionalJson(const std::optional<std::string>& s) { return s ? Json(*s) : Json(); }

Json callersJson(const std::vector<CatalogCaller>& callers) {
  Json out = Json::array();
  for (const CatalogCaller& c : callers) {
    out.push_back(Json{{"control_plane_id", c.control_plane_id},
                       {"control_plane_name", c.control_plane_name},
                       {"consumer_id", c.consumer_id}});
  }
  return out;
}

Json serviceJson(const CatalogService& s) {
  return Json{
      {"id", s.id},
      {"name", s.name},
      {"display_name", optionalJson(s.display_name)},
      {"description", optionalJson(s.description)},
      {"owner_team", optionalJson(s.owner_team)},
      {"labels", s.labels},
      {"links",
       {{"repository", optionalJson(s.repository_url)}, {"runbook", optionalJson(s.runbook_url)}}},
      {"calls_as", callersJson(s.calls_as)},
      {"created_at", s.created_at},
      {"updated_at", s.updated_at}};
}

Json versionJson(const CatalogVersion& v) {
  Json bindings = Json::array();
  for (const CatalogBinding& b : v.bindings) {
    bindings.push_back(Json{{"control_plane_id", b.control_plane_id},
                            {"control_plane_name", b.control_plane_name},
                            {"service_id", b.gateway_service_id}});
  }
  return Json{{"id", v.id},
              {"service", {{"id", v.service_id}}},
              {"version", v.version},
              {"state", v.state},
              {"spec_format", v.spec_format.empty() ? Json() : Json(v.spec_format)},
              {"spec_size", v.spec_bytes},
              {"gateway_services", std::move(bindings)},
              {"created_at", v.created_at},
              {"updated_at", v.updated_at}};
}

ApiResponse uniqueViolation(const Json& fields) {
  return kongError(kUniqueViolation, "unique constraint violation",
                   "UNIQUE violation detected on '" + config::luaTable(fields) + "'", fields);
}

ApiResponse notAnObject() { return message(400, "the request body must be a JSON object"); }

// The request's JSON object body, or the answer refusing it.
std::optional<ApiResponse> readObject(const ApiRequest& req, Json* out) {
  Body body = readBody(req);
  if (std::optional<ApiResponse> bad = bodyError(body)) {
    return bad;
  }
  if (!body.value.is_object()) {
    return notAnObject();
  }
  *out = std::move(body.value);
  return std::nullopt;
}

const std::set<std::string>& serviceFields() {
  static const auto* const kFields =
      new std::set<std::string>{"id",         "name",       "display_name", "description",
                                "owner_team", "labels",     "links",        "calls_as",
                                "created_at", "updated_at"};
  return *kFields;
}

// Applies `body` (a create, or a PATCH over *s) to *s, collecting what is wrong with it.
void applyServiceBody(const Json& body, bool create, CatalogService* s, Errors* errors) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (serviceFields().count(it.key()) == 0) {
      errors->add(it.key(), "unknown field");
    }
  }
  if (auto id = body.find("id"); id != body.end()) {
    if (!id->is_string() || !config::isUuid(id->get<std::string>())) {
      errors->add("id", "expected a valid UUID");
    } else if (create) {
      s->id = id->get<std::string>();
    } else if (*id != s->id) {
      errors->add("id", "cannot be changed");
    }
  }
  if (create && !body.contains("name")) {
    errors->add("name", "required field missing");
  }
  std::optional<std::string> name = s->name;
  readText(body, "name", kMaxNameLength, false, false, errors, &name);
  if (name && config::isUuid(*name)) {
    errors->add("name", "must not be a UUID (the path takes a service's id or name)");
  } else if (name) {
    s->name = *name;
  }
  readText(body, "display_name", kMaxNameLength, false, true, errors, &s->display_name);
  readText(body, "description", kMaxDescriptionLength, true, true, errors, &s->description);
  readText(body, "owner_team", kMaxNameLength, false, true, errors, &s->owner_team);
  if (auto labels = body.find("labels"); labels != body.end()) {
    bool ok = labels->is_object() && labels->size() <= kMaxLabels;
    if (ok) {
      for (auto l = labels->begin(); ok && l != labels->end(); ++l) {
        const size_t key_length = utf8Length(l.key());
        ok = key_length >= 1 && key_length <= kMaxLabelLength &&
             !hasControlCharacter(l.key(), false) &&
             l.key().find_first_of(":,") == std::string::npos && l->is_string();
        if (ok) {
          const std::string& v = l->get_ref<const std::string&>();
          const size_t length = utf8Length(v);
          ok = length >= 1 && length <= kMaxLabelLength && !hasControlCharacter(v, false) &&
               v.find(',') == std::string::npos;
        }
      }
    }
    if (labels->is_null()) {
      s->labels = Json::object();
    } else if (!ok) {
      errors->add("labels",
                  "must be an object of at most 50 string values, keys and values of 1 to 63 "
                  "characters without control characters, ',' or (in keys) ':'");
    } else {
      s->labels = *labels;
    }
  }
  if (auto links = body.find("links"); links != body.end() && !links->is_null()) {
    if (!links->is_object()) {
      errors->add("links", "expected an object");
      return;
    }
    for (auto l = links->begin(); l != links->end(); ++l) {
      const std::string field = "links." + l.key();
      std::optional<std::string>* out = l.key() == "repository" ? &s->repository_url
                                        : l.key() == "runbook"  ? &s->runbook_url
                                                                : nullptr;
      if (out == nullptr) {
        errors->add(field, "unknown field");
      } else if (l->is_null()) {
        out->reset();
      } else if (!l->is_string() || !isWebUrl(l->get<std::string>())) {
        errors->add(field, "must be an http or https URL of at most 2048 characters");
      } else {
        *out = l->get<std::string>();
      }
    }
  } else if (links != body.end()) {
    s->repository_url.reset();
    s->runbook_url.reset();
  }
}

// An entity of a control plane, by ids.
struct GroupEntity {
  std::string control_plane_id, control_plane_name, id;
};

class CatalogApi {
 public:
  explicit CatalogApi(PgConfigStore& store) : store_(store), catalog_(store.pool()) {}

  // ---- services ------------------------------------------------------------------------------
  ApiResponse services(const EndpointCall& call) {
    if (call.method() == "POST") {
      Json body;
      if (auto bad = readObject(call.request, &body)) {
        return *std::move(bad);
      }
      CatalogService s;
      Errors errors;
      applyServiceBody(body, true, &s, &errors);
      if (auto answer = readCallers(body, &s, &errors)) {
        return *std::move(answer);
      }
      if (!errors.empty()) {
        return errors.response();
      }
      auto created = catalog_.createService(s);
      if (absl::IsAlreadyExists(created.status())) {
        return serviceConflict(created.status(), s);
      }
      if (!created.ok()) {
        return statusResponse(created.status());
      }
      return json(201, serviceJson(*created));
    }
    CatalogServiceQuery q;
    PageRequest page;
    Errors errors;
    if (std::optional<config::FieldError> bad = readPageRequest(call.query, &page)) {
      errors.add(bad->field, bad->reason);
    }
    q.size = page.size;
    q.number = page.number;
    if (auto it = call.query.find("q"); it != call.query.end()) {
      if (utf8Length(it->second) > kMaxQueryLength) {
        errors.add("q", "must be at most 1000 characters");
      }
      q.text = it->second;
    }
    if (auto it = call.query.find("owner"); it != call.query.end()) {
      q.owner_team = it->second;
    }
    if (auto it = call.query.find("label"); it != call.query.end()) {
      // "key:value,key2": every pair matches, every bare key is present.
      size_t start = 0;
      while (start <= it->second.size()) {
        size_t comma = it->second.find(',', start);
        if (comma == std::string::npos) {
          comma = it->second.size();
        }
        const std::string item = it->second.substr(start, comma - start);
        const size_t colon = item.find(':');
        if (item.empty() || colon == 0) {
          errors.add("label", "expected key:value or key, comma-separated");
          break;
        }
        if (colon == std::string::npos) {
          q.label_keys.push_back(item);
        } else {
          q.labels_contain[item.substr(0, colon)] = item.substr(colon + 1);
        }
        start = comma + 1;
      }
    }
    if (!errors.empty()) {
      return errors.response();
    }
    auto found = catalog_.listServices(q);
    if (!found.ok()) {
      return statusResponse(found.status());
    }
    Json data = Json::array();
    for (const CatalogService& s : found->items) {
      data.push_back(serviceJson(s));
    }
    return json(200, pageBody(std::move(data), page, found->total));
  }

  ApiResponse service(const EndpointCall& call) {
    auto s = catalog_.getService(call.params[0]);
    if (!s.ok()) {
      if (absl::IsNotFound(s.status()) && call.method() == "DELETE") {
        return {204, ""};  // as Kong: deleting what is not there succeeds
      }
      return statusResponse(s.status());
    }
    if (call.method() == "GET") {
      return json(200, serviceJson(*s));
    }
    if (call.method() == "DELETE") {
      const absl::Status st = catalog_.deleteService(s->id);
      return st.ok() || absl::IsNotFound(st) ? ApiResponse{204, ""} : statusResponse(st);
    }
    Json body;
    if (auto bad = readObject(call.request, &body)) {
      return *std::move(bad);
    }
    Errors errors;
    applyServiceBody(body, false, &*s, &errors);
    if (auto answer = readCallers(body, &*s, &errors)) {
      return *std::move(answer);
    }
    if (!errors.empty()) {
      return errors.response();
    }
    auto updated = catalog_.updateService(*s);
    if (absl::IsAlreadyExists(updated.status())) {
      return serviceConflict(updated.status(), *s);
    }
    if (!updated.ok()) {
      return statusResponse(updated.status());
    }
    return json(200, serviceJson(*updated));
  }

  // ---- versions ------------------------------------------------------------------------------
  ApiResponse versions(const EndpointCall& call) {
    auto s = catalog_.getService(call.params[0]);
    if (!s.ok()) {
      return statusResponse(s.status());
    }
    if (call.method() == "GET") {
      PageRequest page;
      if (std::optional<config::FieldError> bad = readPageRequest(call.query, &page)) {
        return schemaViolation({*bad});
      }
      auto list = catalog_.listVersions(s->id, page.size, page.number);
      if (!list.ok()) {
        return statusResponse(list.status());
      }
      Json data = Json::array();
      for (const CatalogVersion& v : list->items) {
        data.push_back(versionJson(v));
      }
      return json(200, pageBody(std::move(data), page, list->total));
    }
    Json body;
    if (auto bad = readObject(call.request, &body)) {
      return *std::move(bad);
    }
    CatalogVersionUpdate u;
    std::string id;
    if (auto answer = readVersionBody(body, true, &u, &id)) {
      return *std::move(answer);
    }
    CatalogVersion v;
    v.id = id;
    v.service_id = s->id;
    v.version = *u.version;
    if (u.state) {
      v.state = *u.state;
    }
    v.spec = u.spec;
    v.spec_format = u.spec_format;
    v.spec_terms = u.spec_terms;
    if (u.bindings) {
      v.bindings = *u.bindings;
    }
    auto created = catalog_.createVersion(v);
    if (absl::IsAlreadyExists(created.status())) {
      return created.status().message() == "id" ? uniqueViolation(Json{{"id", id}})
                                                : uniqueViolation(Json{{"version", v.version}});
    }
    if (!created.ok()) {
      return statusResponse(created.status());
    }
    securePublished(*created);
    return json(201, versionJson(*created));
  }

  ApiResponse version(const EndpointCall& call) {
    auto s = catalog_.getService(call.params[0]);
    if (!s.ok()) {
      return statusResponse(s.status());
    }
    const bool document = call.segments.size() == 6 && call.segments[5] == "spec";
    auto v = catalog_.getVersion(s->id, call.params[1], document);
    if (!v.ok()) {
      if (absl::IsNotFound(v.status()) && call.method() == "DELETE") {
        return {204, ""};
      }
      return statusResponse(v.status());
    }
    if (document) {
      if (!v->spec) {
        return message(404, "this version has no OpenAPI document");
      }
      ApiResponse r{200, *std::move(v->spec)};
      r.content_type = v->spec_format == "yaml" ? "application/yaml" : "application/json";
      return r;
    }
    if (call.method() == "GET") {
      return json(200, versionJson(*v));
    }
    if (call.method() == "DELETE") {
      const absl::Status st = catalog_.deleteVersion(s->id, v->id);
      return st.ok() || absl::IsNotFound(st) ? ApiResponse{204, ""} : statusResponse(st);
    }
    Json body;
    if (auto bad = readObject(call.request, &body)) {
      return *std::move(bad);
    }
    CatalogVersionUpdate u;
    std::string id = v->id;
    if (auto answer = readVersionBody(body, false, &u, &id)) {
      return *std::move(answer);
    }
    auto updated = catalog_.updateVersion(s->id, v->id, u);
    if (absl::IsAlreadyExists(updated.status())) {
      return uniqueViolation(Json{{"version", *u.version}});
    }
    if (!updated.ok()) {
      return statusResponse(updated.status());
    }
    securePublished(*updated);
    return json(200, versionJson(*updated));
  }

  // ---- dependencies --------------------------------------------------------------------------
  // GET lists declared and observed ones (source=declared|observed|all, default all) in one
  // direction (direction=dependencies|dependents), observed over the usage window
  // (start, end, granularity); POST declares one.
  ApiResponse dependencies(const EndpointCall& call) {
    auto s = catalog_.getService(call.params[0]);
    if (!s.ok()) {
      return statusResponse(s.status());
    }
    if (call.method() == "GET") {
      PageRequest page;
      Errors errors;
      if (std::optional<config::FieldError> bad = readPageRequest(call.query, &page)) {
        errors.add(bad->field, bad->reason);
      }
      CatalogDependencyQuery q = dependencyQuery(call, s->id, &errors);
      if (auto it = call.query.find("source"); it != call.query.end()) {
        q.declared = it->second != "observed";
        q.observed = it->second != "declared";
        if (it->second != "all" && it->second != "declared" && it->second != "observed") {
          errors.add("source", "expected one of: all, declared, observed");
        }
      }
      if (!errors.empty()) {
        return errors.response();
      }
      q.size = page.size;
      q.number = page.number;
      auto list = catalog_.listDependencies(q);
      if (!list.ok()) {
        return statusResponse(list.status());
      }
      Json data = Json::array();
      for (const CatalogDependency& d : list->items) {
        data.push_back(dependencyJson(d));
      }
      Json body = pageBody(std::move(data), page, list->total);
      body["meta"]["window"] = windowJson(q);
      return json(200, std::move(body));
    }
    Json body;
    if (auto bad = readObject(call.request, &body)) {
      return *std::move(bad);
    }
    Errors errors;
    for (auto it = body.begin(); it != body.end(); ++it) {
      if (it.key() != "service") {
        errors.add(it.key(), "unknown field");
      }
    }
    auto ref = body.find("service");
    if (ref == body.end()) {
      errors.add("service", "required field missing");
    } else if (!ref->is_string() || ref->get_ref<const std::string&>().empty()) {
      errors.add("service", "expected a catalog service's id or name");
    }
    if (!errors.empty()) {
      return errors.response();
    }
    const std::string& target = ref->get_ref<const std::string&>();
    auto dep = catalog_.getService(target);
    if (absl::IsNotFound(dep.status())) {
      errors.add("service", "catalog service '" + target + "' not found");
      return errors.response();
    }
    if (!dep.ok()) {
      return statusResponse(dep.status());
    }
    if (dep->id == s->id) {
      errors.add("service", "a service cannot depend on itself");
      return errors.response();
    }
    const absl::Status st = catalog_.addDependency(s->id, dep->id);
    if (absl::IsAlreadyExists(st)) {
      return uniqueViolation(Json{{"service", dep->name}});
    }
    if (!st.ok()) {
      return statusResponse(st);
    }
    return json(201, serviceJson(*dep));
  }

  // GET: the dependency on one service, declared or observed in the window (404: neither).
  // DELETE: removes the declaration (an observed dependency stays as long as the traffic).
  ApiResponse dependency(const EndpointCall& call) {
    auto s = catalog_.getService(call.params[0]);
    if (!s.ok()) {
      return statusResponse(s.status());
    }
    auto dep = catalog_.getService(call.params[1]);
    if (!dep.ok()) {
      if (absl::IsNotFound(dep.status()) && call.method() == "DELETE") {
        return {204, ""};
      }
      return statusResponse(dep.status());
    }
    if (call.method() == "DELETE") {
      const absl::Status st = catalog_.removeDependency(s->id, dep->id);
      return st.ok() || absl::IsNotFound(st) ? ApiResponse{204, ""} : statusResponse(st);
    }
    Errors errors;
    CatalogDependencyQuery q = dependencyQuery(call, s->id, &errors);
    if (!errors.empty()) {
      return errors.response();
    }
    q.other_id = dep->id;
    auto list = catalog_.listDependencies(q);
    if (!list.ok()) {
      return statusResponse(list.status());
    }
    if (list->items.empty()) {
      return message(404, "Not found");
    }
    return json(200, dependencyJson(list->items[0]));
  }

  // ---- usage ---------------------------------------------------------------------------------
  ApiResponse usage(const EndpointCall& call) {
    auto s = catalog_.getService(call.params[0]);
    if (!s.ok()) {
      return statusResponse(s.status());
    }
    std::optional<CatalogVersion> only;
    if (call.params.size() > 1) {
      auto v = catalog_.getVersion(s->id, call.params[1], false);
      if (!v.ok()) {
        return statusResponse(v.status());
      }
      only = *std::move(v);
    }
    Errors errors;
    const Window w = readWindow(call, &errors);
    if (!errors.empty()) {
      return errors.response();
    }
    auto rows = catalog_.usage(s->id, only ? only->id : "", w.granularity, w.start, w.end);
    if (!rows.ok()) {
      return statusResponse(rows.status());
    }
    // A gateway service two versions share counts once in the service's total.
    Totals service_total;
    std::set<std::pair<std::string, std::string>> counted;
    std::map<std::string, Totals> by_version;
    std::map<std::string, Json> bindings_by_version;
    for (const CatalogUsageRow& r : *rows) {
      if (counted.insert({r.control_plane_name, r.gateway_service_id}).second) {
        service_total.add(r);
      }
      by_version[r.version_id].add(r);
      Totals one;
      one.add(r);
      Json b = one.json();
      b["control_plane_name"] = r.control_plane_name;
      b["service_id"] = r.gateway_service_id;
      bindings_by_version[r.version_id].push_back(std::move(b));
    }
    const Json meta = w.json();
    if (only) {
      Json data = by_version[only->id].json();
      data["gateway_services"] =
          bindings_by_version[only->id].is_null() ? Json::array() : bindings_by_version[only->id];
      return json(200, Json{{"meta", meta}, {"data", std::move(data)}});
    }
    Json data = service_total.json();
    Json versions = Json::array();
    for (auto& [version_id, totals] : by_version) {
      Json v = totals.json();
      v["id"] = version_id;
      v["gateway_services"] = std::move(bindings_by_version[version_id]);
      versions.push_back(std::move(v));
    }
    data["versions"] = std::move(versions);
    return json(200, Json{{"meta", meta}, {"data", std::move(data)}});
  }

 private:
  // The traffic window of usage and observed dependencies: start and end in epoch seconds
  // (default: the last hour), granularity 10s, 1m (default) or 1h.
  struct Window {
    int granularity = 60;
    int64_t start = 0, end = 0;
    Json json() const {
      return Json{{"start", start},
                  {"end", end},
                  {"granularity", granularity == 10 ? "10s" : granularity == 60 ? "1m" : "1h"}};
    }
  };
  static Window readWindow(const EndpointCall& call, Errors* errors) {
    Window w;
    if (auto it = call.query.find("granularity"); it != call.query.end()) {
      w.granularity = it->second == "10s"  ? 10
                      : it->second == "1m" ? 60
                      : it->second == "1h" ? 3600
                                           : 0;
      if (w.granularity == 0) {
        errors->add("granularity", "expected one of: 10s, 1m, 1h");
      }
    }
    const int64_t now = static_cast<int64_t>(std::time(nullptr));
    w.end = now;
    w.start = now - 3600;
    for (auto [key, out] : {std::pair<const char*, int64_t*>{"start", &w.start}, {"end", &w.end}}) {
      if (auto it = call.query.find(key); it != call.query.end()) {
        char* stop = nullptr;
        const long long v = std::strtoll(it->second.c_str(), &stop, 10);
        if (it->second.empty() || *stop != '\0' || v < 0 || v > (int64_t{1} << 40)) {
          errors->add(key, "expected epoch seconds");
        } else {
          *out = v;
        }
      }
    }
    if (errors->empty() && w.start >= w.end) {
      errors->add("end", "must be after start");
    }
    return w;
  }

  // The direction and window of a dependency read.
  static CatalogDependencyQuery dependencyQuery(const EndpointCall& call,
                                                const std::string& service_id, Errors* errors) {
    CatalogDependencyQuery q;
    q.service_id = service_id;
    if (auto it = call.query.find("direction"); it != call.query.end()) {
      q.dependents = it->second == "dependents";
      if (!q.dependents && it->second != "dependencies") {
        errors->add("direction", "expected one of: dependencies, dependents");
      }
    }
    const Window w = readWindow(call, errors);
    q.granularity = w.granularity;
    q.start = w.start;
    q.end = w.end;
    return q;
  }
  static Json windowJson(const CatalogDependencyQuery& q) {
    return Window{q.granularity, q.start, q.end}.json();
  }

  // The other service, whether the dependency is declared, and its traffic when observed.
  static Json dependencyJson(const CatalogDependency& d) {
    Json j = serviceJson(d.service);
    j["declared"] = d.declared;
    j["observed"] = d.observed ? Json{{"requests", d.requests},
                                      {"errors_5xx", d.errors_5xx},
                                      {"last_seen", d.last_seen}}
                               : Json();
    return j;
  }

  struct Totals {
    int64_t requests = 0, errors_5xx = 0, max_ms = 0;
    portico::vitals::LatencyCounts bins{};
    void add(const CatalogUsageRow& r) {
      requests += r.requests;
      errors_5xx += r.errors_5xx;
      max_ms = std::max(max_ms, r.max_latency_ms);
      for (size_t i = 0; i < bins.size() && i < r.latency_bins.size(); ++i) {
        bins[i] += r.latency_bins[i];
      }
    }
    Json json() const {
      const portico::vitals::LatencyPercentiles p =
          portico::vitals::latencyPercentiles(bins.data(), max_ms);
      return Json{
          {"requests", requests},
          {"errors_5xx", errors_5xx},
          {"error_rate",
           requests > 0 ? static_cast<double>(errors_5xx) / static_cast<double>(requests) : 0.0},
          {"latency_ms", {{"p50", p.p50}, {"p95", p.p95}, {"p99", p.p99}, {"max", max_ms}}}};
    }
  };

  // A version's body (create, or PATCH) into *u; the answer refusing it otherwise. Gateway
  // service bindings are resolved here: each must name an existing control plane and a
  // service in it (by id or name), stored by id.
  std::optional<ApiResponse> readVersionBody(const Json& body, bool create, CatalogVersionUpdate* u,
                                             std::string* id) {
    Errors errors;
    for (auto it = body.begin(); it != body.end(); ++it) {
      static const auto* const kFields = new std::set<std::string>{
          "id",      "version",    "state",      "spec",        "gateway_services",
          "service", "created_at", "updated_at", "spec_format", "spec_size"};
      if (kFields->count(it.key()) == 0) {
        errors.add(it.key(), "unknown field");
      }
    }
    if (auto it = body.find("id"); it != body.end()) {
      if (!it->is_string() || !config::isUuid(it->get<std::string>())) {
        errors.add("id", "expected a valid UUID");
      } else if (create) {
        *id = it->get<std::string>();
      } else if (*it != *id) {
        errors.add("id", "cannot be changed");
      }
    }
    if (create && !body.contains("version")) {
      errors.add("version", "required field missing");
    }
    readText(body, "version", kMaxVersionLength, false, false, &errors, &u->version);
    if (u->version && config::isUuid(*u->version)) {
      errors.add("version", "must not be a UUID (the path takes a version's id or version)");
    }
    if (auto it = body.find("state"); it != body.end()) {
      if (*it != "published" && *it != "deprecated" && *it != "unpublished") {
        errors.add("state", "expected one of: published, deprecated, unpublished");
      } else {
        u->state = it->get<std::string>();
      }
    }
    if (auto it = body.find("spec"); it != body.end()) {
      u->set_spec = true;
      if (!it->is_null()) {
        catalog::SpecRead spec = catalog::readSpec(*it);
        if (spec.too_large) {
          return message(413, absl::StrCat("spec: the OpenAPI document is ", spec.bytes,
                                           " bytes, over the limit of ", catalog::kMaxSpecBytes,
                                           " bytes (10 MiB)"));
        }
        if (!spec.issues.empty()) {
          std::string reason = "invalid OpenAPI document: ";
          for (size_t i = 0; i < spec.issues.size(); ++i) {
            reason += (i > 0 ? "; " : "") + spec.issues[i].describe();
          }
          errors.add("spec", reason);
        } else {
          u->spec = std::move(spec.text);
          u->spec_format = std::move(spec.format);
          u->spec_terms = std::move(spec.terms);
        }
      }
    }
    auto bindings = body.find("gateway_services");
    if (bindings != body.end() && !bindings->is_null() &&
        (!bindings->is_array() || bindings->size() > kMaxBindings)) {
      errors.add("gateway_services", "expected an array of at most 100 objects");
    }
    if (!errors.empty()) {
      return errors.response();
    }
    if (bindings == body.end()) {
      return std::nullopt;
    }
    u->bindings.emplace();
    if (bindings->is_null()) {
      return std::nullopt;
    }
    std::vector<GroupEntity> refs;
    if (auto answer = resolveRefs(*bindings, "gateway_services", "service_id", "services",
                                  "service", &errors, &refs)) {
      return answer;
    }
    for (GroupEntity& r : refs) {
      u->bindings->push_back(
          {std::move(r.control_plane_id), std::move(r.control_plane_name), std::move(r.id)});
    }
    if (!errors.empty()) {
      return errors.response();
    }
    return std::nullopt;
  }

  // `calls_as` of a service body into s->calls_as (absent: left alone; null: none). Only a
  // storage failure is answered; what is wrong goes to *errors.
  std::optional<ApiResponse> readCallers(const Json& body, CatalogService* s, Errors* errors) {
    auto it = body.find("calls_as");
    if (it == body.end()) {
      return std::nullopt;
    }
    if (it->is_null()) {
      s->calls_as.clear();
      return std::nullopt;
    }
    if (!it->is_array() || it->size() > kMaxBindings) {
      errors->add("calls_as", "expected an array of at most 100 objects");
      return std::nullopt;
    }
    std::vector<GroupEntity> refs;
    if (auto answer =
            resolveRefs(*it, "calls_as", "consumer_id", "consumers", "consumer", errors, &refs)) {
      return answer;
    }
    s->calls_as.clear();
    for (GroupEntity& r : refs) {
      s->calls_as.push_back(
          {std::move(r.control_plane_id), std::move(r.control_plane_name), std::move(r.id)});
    }
    return std::nullopt;
  }

  // A consumer another catalog service calls as: 409, naming it.
  static ApiResponse serviceConflict(const absl::Status& st, const CatalogService& s) {
    const std::string what(st.message());
    if (what == "id") {
      return uniqueViolation(Json{{"id", s.id}});
    }
    if (what == "name") {
      return uniqueViolation(Json{{"name", s.name}});
    }
    for (const CatalogCaller& c : s.calls_as) {
      if (what == c.control_plane_id + "/" + c.consumer_id) {
        return uniqueViolation(Json{{"calls_as", {{"control_plane_id", c.control_plane_id},
                                                  {"consumer_id", c.consumer_id}}}});
      }
    }
    return uniqueViolation(Json{{"calls_as", callersJson(s.calls_as)}});
  }

  // Each object of `list` names a control plane (`control_plane_id`: id or name) and an entity
  // of `type` in it (`key`: id, or the type's endpoint key), resolved to ids into *out; what
  // does not resolve is an error naming "<field>.N.<key>".
  // Only a storage failure is answered.
  std::optional<ApiResponse> resolveRefs(const Json& list, const std::string& field,
                                         const std::string& key, const std::string& type,
                                         const std::string& noun, Errors* errors,
                                         std::vector<GroupEntity>* out) {
    for (size_t i = 0; i < list.size(); ++i) {
      const Json& b = list[i];
      const std::string at = absl::StrCat(field, ".", i + 1);
      if (!b.is_object()) {
        errors->add(at, "expected an object");
        continue;
      }
      for (auto it = b.begin(); it != b.end(); ++it) {
        if (it.key() != "control_plane_id" && it.key() != key &&
            it.key() != "control_plane_name") {
          errors->add(at + "." + it.key(), "unknown field");
        }
      }
      const auto ref = [&](const std::string& name) -> const std::string* {
        auto it = b.find(name);
        if (it == b.end()) {
          errors->add(at + "." + name, "required field missing");
        } else if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
          errors->add(at + "." + name, "expected an id or a name");
        } else {
          return &it->get_ref<const std::string&>();
        }
        return nullptr;
      };
      const std::string* cp = ref("control_plane_id");
      const std::string* entity = ref(key);
      if (cp == nullptr || entity == nullptr) {
        continue;
      }
      auto group = store_.getGroup(*cp);
      if (absl::IsNotFound(group.status())) {
        errors->add(at + ".control_plane_id", "control plane '" + *cp + "' not found");
        continue;
      }
      if (!group.ok()) {
        return statusResponse(group.status());
      }
      auto found = store_.getJson(group->name, type, *entity);
      if (absl::IsNotFound(found.status())) {
        errors->add(at + "." + key,
                    noun + " '" + *entity + "' not found in control plane '" + group->name + "'");
        continue;
      }
      if (!found.ok()) {
        return statusResponse(found.status());
      }
      out->push_back({group->id, group->name, (*found)["id"].get<std::string>()});
    }
    return std::nullopt;
  }

  // A published version's gateway services admit only applications the Dev Portal registered
  // for it (key-auth + acl; control_plane/portal/provisioning.h), from the moment it is
  // published. A failure (an acl plugin with a deny list) is logged; approvals retry it and
  // report it.
  void securePublished(const CatalogVersion& v) {
    if (v.state != "published") {
      return;
    }
    if (absl::Status st = portal::Provisioner(store_).secureVersion(v); !st.ok()) {
      LOG_WARN("catalog", "version %s published but not secured for the portal: %s", v.id,
               st.ToString());
    }
  }

  PgConfigStore& store_;
  PgCatalogStore catalog_;
};

}  // namespace
}  // namespace catalog_api

bool isCatalogSpecUpload(std::string_view method, std::string_view target) {
  if (method != "POST" && method != "PATCH") {
    return false;
  }
  constexpr std::string_view kPrefix = "/service-catalog/services/";
  const std::string_view path = target.substr(0, target.find('?'));
  return path.substr(0, kPrefix.size()) == kPrefix &&
         path.find("/versions", kPrefix.size()) != std::string_view::npos;
}

void addCatalogEndpoints(EndpointTable& table, const EndpointDeps& deps) {
  auto api = std::make_shared<catalog_api::CatalogApi>(deps.store);
  const auto bind = [api](ApiResponse (catalog_api::CatalogApi::*handler)(const EndpointCall&)) {
    return [api, handler](const EndpointCall& call) { return ((*api).*handler)(call); };
  };
  using catalog_api::CatalogApi;
  table.add(kGet | kPost, "service-catalog/services", bind(&CatalogApi::services),
            Scope::kRootOnly);
  table.add(kGet | kPatch | kDelete, "service-catalog/services/{svc}", bind(&CatalogApi::service),
            Scope::kRootOnly);
  table.add(kGet | kPost, "service-catalog/services/{svc}/versions", bind(&CatalogApi::versions),
            Scope::kRootOnly);
  table.add(kGet | kPatch | kDelete, "service-catalog/services/{svc}/versions/{ver}",
            bind(&CatalogApi::version), Scope::kRootOnly);
  table.add(kGet, "service-catalog/services/{svc}/versions/{ver}/spec", bind(&CatalogApi::version),
            Scope::kRootOnly);
  table.add(kGet, "service-catalog/services/{svc}/versions/{ver}/usage", bind(&CatalogApi::usage),
            Scope::kRootOnly);
  table.add(kGet | kPost, "service-catalog/services/{svc}/dependencies",
            bind(&CatalogApi::dependencies), Scope::kRootOnly);
  table.add(kGet | kDelete, "service-catalog/services/{svc}/dependencies/{dep}",
            bind(&CatalogApi::dependency), Scope::kRootOnly);
  table.add(kGet, "service-catalog/services/{svc}/usage", bind(&CatalogApi::usage),
            Scope::kRootOnly);
}

}  // namespace portico::cp::admin
