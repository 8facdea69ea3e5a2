#include "common/config/kong_json.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "common/config/typedefs.h"
#include "re2/re2.h"

namespace portico::config {
namespace {

constexpr char kRequired[] = "required field missing";

// Reads typed values out of a JSON object, recording Kong's type errors by field path.
class Reader {
 public:
  Reader(const Json& in, const char* entity, FieldErrors* errors)
      : in_(in), entity_(entity), errors_(errors) {}

  void error(const std::string& field, const std::string& reason) {
    errors_->push_back({entity_, "", field, reason});
  }

  // Unknown keys are errors; `known` lists every accepted key.
  void rejectUnknown(const std::set<std::string>& known) {
    for (auto it = in_.begin(); it != in_.end(); ++it) {
      if (known.count(it.key()) == 0) {
        error(it.key(), "unknown field");
      }
    }
  }

  // Present and not null.
  const Json* get(const std::string& key) const {
    auto it = in_.find(key);
    if (it == in_.end() || it->is_null()) {
      return nullptr;
    }
    return &*it;
  }
  bool isExplicitNull(const std::string& key) const {
    auto it = in_.find(key);
    return it != in_.end() && it->is_null();
  }

  // For Kong's `required = true` fields that have a default: absent -> default, null -> error.
  bool requiredNull(const std::string& key) {
    if (isExplicitNull(key)) {
      error(key, kRequired);
      return true;
    }
    return false;
  }

  std::optional<std::string> string(const std::string& key) {
    const Json* v = get(key);
    if (v == nullptr) {
      return std::nullopt;
    }
    if (!v->is_string()) {
      error(key, "expected a string");
      return std::nullopt;
    }
    return v->get<std::string>();
  }

  std::optional<int32_t> integer(const std::string& key) {
    const Json* v = get(key);
    if (v == nullptr) {
      return std::nullopt;
    }
    return toInt(key, *v);
  }

  std::optional<int32_t> toInt(const std::string& field, const Json& v) {
    double d = 0;
    if (v.is_number_integer()) {
      if (v.is_number_unsigned()) {
        d = static_cast<double>(v.get<uint64_t>());
      } else {
        d = static_cast<double>(v.get<int64_t>());
      }
    } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) {
      d = v.get<double>();
    } else {
      error(field, "expected an integer");
      return std::nullopt;
    }
    // Saturate: the range check in validate.h then reports Kong's "between" message.
    d = std::clamp(d, static_cast<double>(std::numeric_limits<int32_t>::min()),
                   static_cast<double>(std::numeric_limits<int32_t>::max()));
    return static_cast<int32_t>(d);
  }

  std::optional<bool> boolean(const std::string& key) {
    const Json* v = get(key);
    if (v == nullptr) {
      return std::nullopt;
    }
    if (!v->is_boolean()) {
      error(key, "expected a boolean");
      return std::nullopt;
    }
    return v->get<bool>();
  }

  // Arrays and sets of strings. Returns false (and records errors) if not well-typed.
  bool strings(const std::string& key, bool is_set,
               google::protobuf::RepeatedPtrField<std::string>* out) {
    const Json* v = get(key);
    if (v == nullptr) {
      return true;
    }
    return stringsFrom(key, *v, is_set, out);
  }

  bool stringsFrom(const std::string& field, const Json& v, bool is_set,
                   google::protobuf::RepeatedPtrField<std::string>* out) {
    // An empty object is what Lua's cjson makes of an empty array; Kong accepts it.
    if (v.is_object() && v.empty()) {
      return true;
    }
    if (!v.is_array()) {
      error(field, is_set ? "expected a set" : "expected an array");
      return false;
    }
    bool ok = true;
    std::set<std::string> seen;
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_string()) {
        error(field + "." + std::to_string(i + 1), "expected a string");
        ok = false;
        continue;
      }
      const std::string s = v[i].get<std::string>();
      // Sets drop duplicates, as Kong's set type does.
      if (is_set && !seen.insert(s).second) {
        continue;
      }
      out->Add(std::string(s));
    }
    return ok;
  }

 private:
  const Json& in_;
  const char* entity_;
  FieldErrors* errors_;
};

// Expands the services `url` shorthand into `obj`'s protocol/host/port/path.
void expandUrl(Json& obj, FieldErrors* errors) {
  auto it = obj.find("url");
  if (it == obj.end()) {
    return;
  }
  if (it->is_null()) {
    obj.erase(it);
    return;
  }
  if (!it->is_string()) {
    errors->push_back({"services", "", "url", "expected a string"});
    obj.erase(it);
    return;
  }
  std::string url = it->get<std::string>();
  obj.erase(it);
  std::string scheme;
  const size_t sep = url.find("://");
  if (sep != std::string::npos) {
    scheme = url.substr(0, sep);
    url = url.substr(sep + 3);
  }
  const size_t path_start = url.find_first_of("/?#");
  std::string authority = url.substr(0, path_start);
  std::string path;
  if (path_start != std::string::npos && url[path_start] == '/') {
    path = url.substr(path_start);
    path = path.substr(0, path.find_first_of("?#"));
  }
  if (const size_t at = authority.rfind('@'); at != std::string::npos) {
    authority = authority.substr(at + 1);
  }
  std::string host = authority;
  std::optional<int64_t> port;
  const size_t bracket = authority.rfind(']');
  const size_t colon = authority.rfind(':');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    host = authority.substr(0, colon);
    const std::string port_text = authority.substr(colon + 1);
    if (!port_text.empty() && std::all_of(port_text.begin(), port_text.end(), ::isdigit) &&
        port_text.size() < 10) {
      port = std::stoll(port_text);
    } else {
      host = authority;
    }
  }
  if (!scheme.empty()) {
    obj["protocol"] = scheme;
  } else {
    obj["protocol"] = "http";
  }
  if (!host.empty()) {
    obj["host"] = host;
  }
  if (port) {
    obj["port"] = *port;
  } else {
    obj["port"] = scheme == "https" ? 443 : 80;
  }
  obj["path"] = path.empty() ? Json(nullptr) : Json(path);
}

// Adds validation errors, except for fields whose value already failed to decode (their
// proto value is a default, so the semantic message would be misleading).
void mergeValidation(FieldErrors* errors, FieldErrors validation) {
  std::set<std::string> decode_failed;
  for (const auto& e : *errors) {
    decode_failed.insert(e.field.substr(0, e.field.find('.')));
  }
  // A set, not a scan of *errors: a 1 MiB body can hold 100k bad elements.
  std::set<std::pair<std::string, std::string>> present;
  for (const auto& e : *errors) {
    present.emplace(e.field, e.reason);
  }
  for (auto& e : validation) {
    const std::string top = e.field.substr(0, e.field.find('.'));
    if (decode_failed.count(top) > 0) {
      continue;
    }
    if (e.field == "@entity" && !decode_failed.empty()) {
      continue;
    }
    if (present.emplace(e.field, e.reason).second) {
      errors->push_back(std::move(e));
    }
  }
}

void readForeignId(Reader& r, const Json& in, const std::string& key,
                   std::optional<std::string>* id, std::optional<std::string>* name) {
  auto it = in.find(key);
  if (it == in.end() || it->is_null()) {
    return;
  }
  if (!it->is_object()) {
    r.error(key, "expected a record");
    return;
  }
  auto idv = it->find("id");
  if (idv != it->end() && !idv->is_null()) {
    if (!idv->is_string()) {
      r.error(key + ".id", "expected a string");
      return;
    }
    *id = idv->get<std::string>();
    return;
  }
  auto namev = it->find("name");
  if (name != nullptr && namev != it->end() && !namev->is_null()) {
    if (!namev->is_string()) {
      r.error(key + ".name", "expected a string");
      return;
    }
    *name = namev->get<std::string>();
    return;
  }
  r.error(key + ".id", "missing primary key");
}

Json stringsOrNull(const google::protobuf::RepeatedPtrField<std::string>& v) {
  if (v.empty()) {
    return nullptr;
  }
  return Json(std::vector<std::string>(v.begin(), v.end()));
}

template <class T>
Json optionalOrNull(bool has, const T& value) {
  return has ? Json(value) : Json(nullptr);
}

// Splits "paths.1" into ["paths", "1"].
std::vector<std::string> splitPath(const std::string& field) {
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

bool isIndex(const std::string& s) {
  return !s.empty() && s.size() < 7 && std::all_of(s.begin(), s.end(), ::isdigit) &&
         s != "0";
}

}  // namespace

FieldErrors decodeService(const Json& body, v1::Service* out) {
  FieldErrors errors;
  out->Clear();
  if (!body.is_object()) {
    errors.push_back({"services", "", "@entity", "expected a record"});
    return errors;
  }
  Json in = body;
  expandUrl(in, &errors);
  Reader r(in, "services", &errors);
  r.rejectUnknown({"id", "created_at", "updated_at", "name", "retries", "protocol", "host",
                   "port", "path", "connect_timeout", "write_timeout", "read_timeout", "tags",
                   "client_certificate", "tls_verify", "tls_verify_depth", "ca_certificates",
                   "enabled"});
  if (auto v = r.string("id")) {
    out->set_id(*v);
  }
  if (auto v = r.integer("created_at")) {
    out->set_created_at(*v);
  }
  if (auto v = r.integer("updated_at")) {
    out->set_updated_at(*v);
  }
  if (auto v = r.string("name")) {
    out->set_name(*v);
  }
  out->set_retries(r.integer("retries").value_or(5));
  if (!r.requiredNull("protocol")) {
    out->set_protocol(r.string("protocol").value_or(r.get("protocol") ? "" : "http"));
  }
  if (auto v = r.string("host")) {
    if (v->empty()) {
      r.error("host", "length must be at least 1");
    }
    out->set_host(*v);
  }
  if (!r.requiredNull("port")) {
    out->set_port(r.integer("port").value_or(80));
  }
  if (auto v = r.string("path")) {
    out->set_path(*v);
  }
  out->set_connect_timeout(r.integer("connect_timeout").value_or(60000));
  out->set_write_timeout(r.integer("write_timeout").value_or(60000));
  out->set_read_timeout(r.integer("read_timeout").value_or(60000));
  r.strings("tags", true, out->mutable_tags());
  std::optional<std::string> cert;
  readForeignId(r, in, "client_certificate", &cert, nullptr);
  if (cert) {
    out->set_client_certificate(*cert);
  }
  if (auto v = r.boolean("tls_verify")) {
    out->set_tls_verify(*v);
  }
  if (auto v = r.integer("tls_verify_depth")) {
    out->set_tls_verify_depth(*v);
  }
  r.strings("ca_certificates", false, out->mutable_ca_certificates());
  if (!r.requiredNull("enabled")) {
    out->set_enabled(r.boolean("enabled").value_or(true));
  }
  // A wrong-typed protocol decodes as "", which validate would call missing.
  mergeValidation(&errors, validateService(*out));
  for (auto& e : errors) {
    e.entity_id = out->id();
  }
  return errors;
}

FieldErrors decodeRoute(const Json& in, v1::Route* out, std::optional<std::string>* service_name) {
  FieldErrors errors;
  out->Clear();
  service_name->reset();
  if (!in.is_object()) {
    errors.push_back({"routes", "", "@entity", "expected a record"});
    return errors;
  }
  Reader r(in, "routes", &errors);
  r.rejectUnknown({"id", "created_at", "updated_at", "name", "protocols", "methods", "hosts",
                   "paths", "headers", "https_redirect_status_code", "regex_priority",
                   "strip_path", "path_handling", "preserve_host", "request_buffering",
                   "response_buffering", "snis", "sources", "destinations", "tags",
                   "service"});
  if (auto v = r.string("id")) {
    out->set_id(*v);
  }
  if (auto v = r.integer("created_at")) {
    out->set_created_at(*v);
  }
  if (auto v = r.integer("updated_at")) {
    out->set_updated_at(*v);
  }
  if (auto v = r.string("name")) {
    out->set_name(*v);
  }
  if (!r.requiredNull("protocols")) {
    if (r.get("protocols") == nullptr) {
      out->add_protocols("http");
      out->add_protocols("https");
    } else {
      r.strings("protocols", true, out->mutable_protocols());
    }
  }
  r.strings("methods", true, out->mutable_methods());
  r.strings("hosts", false, out->mutable_hosts());
  r.strings("paths", false, out->mutable_paths());
  if (const Json* h = r.get("headers")) {
    if (!h->is_object()) {
      r.error("headers", "expected a map");
    } else {
      for (auto it = h->begin(); it != h->end(); ++it) {
        v1::HeaderMatch* m = out->add_headers();
        m->set_name(it.key());
        if (it->is_string()) {
          m->add_values(it->get<std::string>());
        } else {
          r.stringsFrom("headers." + it.key(), *it, false, m->mutable_values());
        }
      }
    }
  }
  r.strings("snis", true, out->mutable_snis());
  if (!r.requiredNull("https_redirect_status_code")) {
    out->set_https_redirect_status_code(r.integer("https_redirect_status_code").value_or(426));
  }
  out->set_regex_priority(r.integer("regex_priority").value_or(0));
  out->set_path_handling(r.string("path_handling").value_or(r.get("path_handling") ? "" : "v0"));

  // strip_path defaults to false for gRPC routes (the grpc subschema's default).
  bool grpc = false;
  if (out->protocols_size() > 0) {
    grpc = out->protocols(0) == "grpc" || out->protocols(0) == "grpcs";
  }
  const std::pair<const char*, bool> bools[] = {{"strip_path", !grpc},
                                                {"preserve_host", false},
                                                {"request_buffering", true},
                                                {"response_buffering", true}};
  for (const auto& [key, def] : bools) {
    if (r.requiredNull(key)) {
      continue;
    }
    const bool v = r.boolean(key).value_or(def);
    if (std::string_view(key) == "strip_path") {
      out->set_strip_path(v);
    } else if (std::string_view(key) == "preserve_host") {
      out->set_preserve_host(v);
    } else if (std::string_view(key) == "request_buffering") {
      out->set_request_buffering(v);
    } else {
      out->set_response_buffering(v);
    }
  }
  // sources/destinations are not modelled yet (stream routing comes later).
  for (const char* key : {"sources", "destinations"}) {
    if (r.get(key) != nullptr) {
      const bool http = out->protocols_size() == 0 || out->protocols(0) == "http" ||
                        out->protocols(0) == "https";
      r.error(key, http ? std::string("cannot set '") + key +
                              "' when 'protocols' is 'http' or 'https'"
                        : std::string("not supported yet"));
    }
  }
  r.strings("tags", true, out->mutable_tags());
  std::optional<std::string> service_id;
  readForeignId(r, in, "service", &service_id, service_name);
  if (service_id) {
    out->set_service_id(*service_id);
  }
  mergeValidation(&errors, validateRoute(*out));
  for (auto& e : errors) {
    e.entity_id = out->id();
  }
  return errors;
}

Json encodeService(const v1::Service& s) {
  Json j = Json::object();
  j["id"] = s.id();
  j["created_at"] = s.created_at();
  j["updated_at"] = s.updated_at();
  j["name"] = optionalOrNull(s.has_name(), s.name());
  j["retries"] = s.retries();
  j["protocol"] = s.protocol();
  j["host"] = s.host();
  j["port"] = s.port();
  j["path"] = optionalOrNull(s.has_path(), s.path());
  j["connect_timeout"] = s.connect_timeout();
  j["write_timeout"] = s.write_timeout();
  j["read_timeout"] = s.read_timeout();
  j["tags"] = stringsOrNull(s.tags());
  j["client_certificate"] =
      s.has_client_certificate() ? Json{{"id", s.client_certificate()}} : Json(nullptr);
  j["tls_verify"] = optionalOrNull(s.has_tls_verify(), s.tls_verify());
  j["tls_verify_depth"] = optionalOrNull(s.has_tls_verify_depth(), s.tls_verify_depth());
  j["ca_certificates"] = stringsOrNull(s.ca_certificates());
  j["enabled"] = s.enabled();
  return j;
}

Json encodeRoute(const v1::Route& r) {
  Json j = Json::object();
  j["id"] = r.id();
  j["created_at"] = r.created_at();
  j["updated_at"] = r.updated_at();
  j["name"] = optionalOrNull(r.has_name(), r.name());
  j["protocols"] = Json(std::vector<std::string>(r.protocols().begin(), r.protocols().end()));
  j["methods"] = stringsOrNull(r.methods());
  j["hosts"] = stringsOrNull(r.hosts());
  j["paths"] = stringsOrNull(r.paths());
  if (r.headers().empty()) {
    j["headers"] = nullptr;
  } else {
    Json h = Json::object();
    for (const auto& m : r.headers()) {
      h[m.name()] = Json(std::vector<std::string>(m.values().begin(), m.values().end()));
    }
    j["headers"] = std::move(h);
  }
  j["https_redirect_status_code"] = r.https_redirect_status_code();
  j["regex_priority"] = r.regex_priority();
  j["strip_path"] = r.strip_path();
  j["path_handling"] = r.path_handling();
  j["preserve_host"] = r.preserve_host();
  j["request_buffering"] = r.request_buffering();
  j["response_buffering"] = r.response_buffering();
  j["snis"] = stringsOrNull(r.snis());
  j["sources"] = nullptr;
  j["destinations"] = nullptr;
  j["tags"] = stringsOrNull(r.tags());
  j["service"] = r.has_service_id() ? Json{{"id", r.service_id()}} : Json(nullptr);
  return j;
}

Json mergePatch(Json current, const Json& patch, bool is_service) {
  if (!patch.is_object()) {
    return patch;
  }
  Json p = patch;
  if (is_service) {
    FieldErrors ignored;  // a bad url is reported when the merged entity is decoded
    if (p.contains("url") && !p["url"].is_string() && !p["url"].is_null()) {
      current["url"] = p["url"];
      p.erase("url");
    }
    expandUrl(p, &ignored);
  }
  for (auto it = p.begin(); it != p.end(); ++it) {
    current[it.key()] = it.value();
  }
  return current;
}

Json fieldsObject(const FieldErrors& errors) {
  Json fields = Json::object();
  for (const auto& e : errors) {
    if (e.field == "@entity") {
      fields["@entity"].push_back(e.reason);
      continue;
    }
    const std::vector<std::string> parts = splitPath(e.field);
    Json* node = &fields;
    bool conflict = false;
    for (size_t i = 0; i < parts.size() && !conflict; ++i) {
      const bool last = i + 1 == parts.size();
      if (isIndex(parts[i]) && (node->is_array() || node->is_null())) {
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

std::string schemaViolationMessage(const FieldErrors& errors) {
  std::vector<std::string> entity;
  std::vector<std::pair<std::string, std::string>> fields;
  for (const auto& e : errors) {
    if (e.field == "@entity") {
      entity.push_back(e.reason);
    } else {
      fields.emplace_back(e.field, e.reason);
    }
  }
  std::stable_sort(fields.begin(), fields.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> parts = entity;
  for (const auto& [f, reason] : fields) {
    parts.push_back(f + ": " + reason);
  }
  std::string joined;
  for (size_t i = 0; i < parts.size(); ++i) {
    joined += (i == 0 ? "" : "; ") + parts[i];
  }
  if (parts.size() == 1) {
    return "schema violation (" + joined + ")";
  }
  return std::to_string(parts.size()) + " schema violations (" + joined + ")";
}

Json schemaViolationBody(const FieldErrors& errors) {
  return Json{{"code", 2},
              {"name", "schema violation"},
              {"message", schemaViolationMessage(errors)},
              {"fields", fieldsObject(errors)}};
}

// ---- the hand-written service and route rules (retired by the schema engine) ---------------

namespace {

// Kong's protocol enum, sorted as it appears in "expected one of: ..." messages.
const char* const kProtocols[] = {"grpc", "grpcs", "http", "https",
                                  "tcp",  "tls",   "tls_passthrough", "udp"};
constexpr char kProtocolsList[] = "grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp";

bool isProtocol(const std::string& p) {
  return std::find(std::begin(kProtocols), std::end(kProtocols), p) != std::end(kProtocols);
}

std::string between(int64_t lo, int64_t hi) {
  return "value should be between " + std::to_string(lo) + " and " + std::to_string(hi);
}

// Collects errors for one entity, so every rule only names the field and the reason.
class Errors {
 public:
  Errors(std::string type, std::string id) : type_(std::move(type)), id_(std::move(id)) {}
  void add(std::string field, std::string reason) {
    // A set, not a scan of errors_: a 1 MiB body can hold 100k bad elements.
    if (!seen_.insert(field + '\n' + reason).second) {
      return;
    }
    errors_.push_back(FieldError{type_, id_, std::move(field), std::move(reason)});
  }
  void addIf(const std::string& field, const std::string& reason) {
    if (!reason.empty()) {
      add(field, reason);
    }
  }
  // True if `field` or anything below it ("paths.1") already has an error.
  bool has(std::string_view field) const {
    for (const auto& e : errors_) {
      if (e.field == field ||
          (e.field.size() > field.size() && e.field.compare(0, field.size(), field) == 0 &&
           e.field[field.size()] == '.')) {
        return true;
      }
    }
    return false;
  }
  FieldErrors take() { return std::move(errors_); }

 private:
  std::string type_, id_;
  FieldErrors errors_;
  absl::flat_hash_set<std::string> seen_;
};

std::string index(const std::string& field, int i) { return field + "." + std::to_string(i + 1); }

void checkTags(Errors& errors, const google::protobuf::RepeatedPtrField<std::string>& tags) {
  for (int i = 0; i < tags.size(); ++i) {
    errors.addIf(index("tags", i), checkTag(tags[i]));
  }
}

bool contains(const google::protobuf::RepeatedPtrField<std::string>& set, std::string_view v) {
  return std::find(set.begin(), set.end(), v) != set.end();
}

// "must set one of 'a', 'b' when ..." for Kong's conditional_at_least_one_of.
std::string quotedList(std::initializer_list<const char*> names) {
  std::string out;
  for (const char* n : names) {
    if (!out.empty()) {
      out += ", ";
    }
    out.append("'").append(n).append("'");
  }
  return out;
}


}  // namespace

FieldErrors validateService(const v1::Service& s) {
  Errors errors("services", s.id());
  if (!s.id().empty()) {
    errors.addIf("id", checkUuid(s.id()));
  }
  if (s.has_name()) {
    errors.addIf("name", checkUtf8Name(s.name()));
  }
  if (s.retries() < 0 || s.retries() > 32767) {
    errors.add("retries", between(0, 32767));
  }
  if (s.protocol().empty()) {
    errors.add("protocol", "required field missing");
  } else if (!isProtocol(s.protocol())) {
    errors.add("protocol", std::string("expected one of: ") + kProtocolsList);
  }
  if (s.host().empty()) {
    errors.add("host", "required field missing");
  } else {
    errors.addIf("host", checkHost(s.host()));
  }
  if (s.port() < 0 || s.port() > 65535) {
    errors.add("port", between(0, 65535));
  }
  if (s.has_path()) {
    errors.addIf("path", checkServicePath(s.path()));
  }
  const std::pair<const char*, int32_t> timeouts[] = {{"connect_timeout", s.connect_timeout()},
                                                      {"write_timeout", s.write_timeout()},
                                                      {"read_timeout", s.read_timeout()}};
  for (const auto& [name, value] : timeouts) {
    if (value < 1 || value > 2147483646) {
      errors.add(name, between(1, 2147483646));
    }
  }
  checkTags(errors, s.tags());
  if (s.has_tls_verify_depth() && (s.tls_verify_depth() < 0 || s.tls_verify_depth() > 64)) {
    errors.add("tls_verify_depth", between(0, 64));
  }
  for (int i = 0; i < s.ca_certificates_size(); ++i) {
    errors.addIf(index("ca_certificates", i), checkUuid(s.ca_certificates(i)));
  }
  if (s.has_client_certificate()) {
    errors.addIf("client_certificate.id", checkUuid(s.client_certificate()));
  }

  // Entity checks (Kong's `conditional` on protocol); skipped when protocol itself is bad.
  if (!errors.has("protocol")) {
    const std::string& p = s.protocol();
    const bool pathless =
        p == "tcp" || p == "tls" || p == "udp" || p == "grpc" || p == "grpcs";
    const char* kConditional = "failed conditional validation given value of field 'protocol'";
    if (pathless && s.has_path() && !errors.has("path")) {
      errors.add("path", "value must be null");
      errors.add("@entity", kConditional);
    }
    if (p != "https" && p != "tls") {
      const std::pair<const char*, bool> tls_fields[] = {
          {"client_certificate", s.has_client_certificate()},
          {"tls_verify", s.has_tls_verify()},
          {"tls_verify_depth", s.has_tls_verify_depth()},
          {"ca_certificates", s.ca_certificates_size() > 0}};
      for (const auto& [name, set] : tls_fields) {
        if (set && !errors.has(name)) {
          errors.add(name, "value must be null");
          errors.add("@entity", kConditional);
        }
      }
    }
  }
  return errors.take();
}

FieldErrors validateRoute(const v1::Route& r) {
  Errors errors("routes", r.id());
  if (!r.id().empty()) {
    errors.addIf("id", checkUuid(r.id()));
  }
  if (r.has_name()) {
    errors.addIf("name", checkUtf8Name(r.name()));
  }

  // protocols: a non-empty set of known protocols from one mutually exclusive family.
  const auto& protocols = r.protocols();
  if (protocols.empty()) {
    errors.add("protocols", "length must be at least 1");
  }
  for (int i = 0; i < protocols.size(); ++i) {
    if (!isProtocol(protocols[i])) {
      errors.add(index("protocols", i), std::string("expected one of: ") + kProtocolsList);
    }
  }
  if (!errors.has("protocols")) {
    static const std::vector<std::vector<std::string>> kFamilies = {
        {"http", "https"}, {"tcp", "tls", "udp"}, {"tls_passthrough"}, {"grpc", "grpcs"}};
    std::vector<const std::vector<std::string>*> used;
    for (const auto& family : kFamilies) {
      for (const auto& p : family) {
        if (contains(protocols, p)) {
          used.push_back(&family);
          break;
        }
      }
    }
    if (used.size() > 1) {
      std::string msg = "these sets are mutually exclusive: ";
      for (size_t i = 0; i < used.size(); ++i) {
        msg += i == 0 ? "(" : ", (";
        for (size_t k = 0; k < used[i]->size(); ++k) {
          msg += (k == 0 ? "'" : ", '") + (*used[i])[k] + "'";
        }
        msg += ")";
      }
      errors.add("protocols", msg);
    }
  }

  static const LazyRE2 kMethodRe = {"[A-Z]+"};
  for (int i = 0; i < r.methods_size(); ++i) {
    if (r.methods(i).empty()) {
      errors.add(index("methods", i), "length must be at least 1");
    } else if (!RE2::FullMatch(r.methods(i), *kMethodRe)) {
      errors.add(index("methods", i), "invalid value: " + r.methods(i));
    }
  }
  for (int i = 0; i < r.hosts_size(); ++i) {
    errors.addIf(index("hosts", i), checkWildcardHost(r.hosts(i)));
  }
  for (int i = 0; i < r.paths_size(); ++i) {
    errors.addIf(index("paths", i), checkRouterPath(r.paths(i)));
  }
  static const LazyRE2 kHeaderNameRe = {"[A-Za-z0-9_-]+"};
  for (const auto& h : r.headers()) {
    if (h.name().empty()) {
      errors.add("headers", "length must be at least 1");
    } else if (h.name().size() > kMaxNameLength) {
      errors.add("headers", checkMaxLength(h.name(), kMaxNameLength));
    } else if (!RE2::FullMatch(h.name(), *kHeaderNameRe)) {
      errors.add("headers", "bad header name '" + h.name() +
                                "', allowed characters are A-Z, a-z, 0-9, '_', and '-'");
    } else if (RE2::FullMatch(h.name(), "(?i)host")) {
      errors.add("headers",
                 "cannot contain 'host' header, which must be specified in the 'hosts' attribute");
    }
    for (int i = 0; i < h.values_size(); ++i) {
      if (h.values(i).empty()) {
        errors.add(index("headers." + h.name(), i), "length must be at least 1");
      }
    }
  }
  for (int i = 0; i < r.snis_size(); ++i) {
    errors.addIf(index("snis", i), checkSni(r.snis(i)));
  }
  const int32_t code = r.https_redirect_status_code();
  if (code != 426 && code != 301 && code != 302 && code != 307 && code != 308) {
    errors.add("https_redirect_status_code", "expected one of: 426, 301, 302, 307, 308");
  }
  if (r.path_handling().empty()) {
    errors.add("path_handling", "required field missing");
  } else if (r.path_handling() != "v0" && r.path_handling() != "v1") {
    errors.add("path_handling", "expected one of: v0, v1");
  }
  if (r.has_service_id()) {
    errors.addIf("service.id", checkUuid(r.service_id()));
  }
  checkTags(errors, r.tags());

  if (errors.has("protocols")) {
    return errors.take();
  }
  // Subschema (selected by the first protocol) field rules.
  const std::string& first = protocols[0];
  const bool grpc = first == "grpc" || first == "grpcs";
  const bool stream =
      first == "tcp" || first == "tls" || first == "udp" || first == "tls_passthrough";
  if (grpc) {
    if (r.strip_path()) {
      errors.add("strip_path", "cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'");
    }
    if (r.methods_size() > 0) {
      errors.add("methods", "cannot set 'methods' when 'protocols' is 'grpc' or 'grpcs'");
    }
  }
  if (stream) {
    const char* kSuffix = "' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp'";
    const std::pair<const char*, bool> forbidden[] = {{"methods", r.methods_size() > 0},
                                                      {"hosts", r.hosts_size() > 0},
                                                      {"paths", r.paths_size() > 0},
                                                      {"headers", r.headers_size() > 0}};
    for (const auto& [name, set] : forbidden) {
      if (set) {
        errors.add(name, std::string("cannot set '") + name + kSuffix);
      }
    }
  }

  // Entity checks.
  const bool sni_capable = contains(protocols, "grpcs") || contains(protocols, "https") ||
                           contains(protocols, "tls") || contains(protocols, "tls_passthrough");
  if (!sni_capable && r.snis_size() > 0) {
    errors.add("@entity",
               "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or "
               "'tls_passthrough'");
    errors.add("snis", "length must be 0");
  }
  const bool has_methods = r.methods_size() > 0, has_hosts = r.hosts_size() > 0,
             has_headers = r.headers_size() > 0, has_paths = r.paths_size() > 0,
             has_snis = r.snis_size() > 0;
  if (contains(protocols, "https")) {
    if (!(has_methods || has_hosts || has_headers || has_paths || has_snis)) {
      errors.add("@entity", "must set one of " +
                                quotedList({"methods", "hosts", "headers", "paths", "snis"}) +
                                " when 'protocols' is 'https'");
    }
  } else if (contains(protocols, "http")) {
    if (!(has_methods || has_hosts || has_headers || has_paths)) {
      errors.add("@entity", "must set one of " +
                                quotedList({"methods", "hosts", "headers", "paths"}) +
                                " when 'protocols' is 'http'");
    }
  }
  if (contains(protocols, "grpcs")) {
    if (!(has_hosts || has_headers || has_paths || has_snis)) {
      errors.add("@entity", "must set one of " +
                                quotedList({"hosts", "headers", "paths", "snis"}) +
                                " when 'protocols' is 'grpcs'");
    }
  } else if (contains(protocols, "grpc")) {
    if (!(has_hosts || has_headers || has_paths)) {
      errors.add("@entity", "must set one of " + quotedList({"hosts", "headers", "paths"}) +
                                " when 'protocols' is 'grpc'");
    }
  }
  if (stream) {
    // sources/destinations are not modelled yet, so snis is the only way to satisfy this.
    // TODO(portico): add sources/destinations to config.proto for stream routes.
    if (first == "tls_passthrough") {
      if (!has_snis) {
        errors.add("@entity", "must set snis when 'protocols' is 'tls_passthrough'");
      }
    } else if (!has_snis) {
      errors.add("@entity", "must set one of " +
                                quotedList({"sources", "destinations", "snis"}) +
                                " when 'protocols' is 'tcp', 'tls' or 'udp'");
    }
  }
  return errors.take();
}

}  // namespace portico::config
