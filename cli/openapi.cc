#include "cli/openapi.h"

#include <algorithm>
#include <charconv>
#include <cctype>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/declarative/declarative.h"
#include "common/status_macros.h"

namespace portico::cli {
namespace {

using Json = declarative::Json;

// $ref expansion bounds: values produced by dereferencing (a schema referenced from every
// operation is copied into each), refs followed in one chain, and nesting after expansion.
constexpr int64_t kMaxExpandedValues = 1'000'000;
constexpr int kMaxRefChain = 32;
constexpr int kMaxExpandedDepth = 128;

constexpr std::string_view kMethods[] = {"get",     "put",  "post",  "delete",
                                         "options", "head", "patch", "trace"};

// JavaScript's truthiness, which openapi-2-kong's `a || b` defaults follow.
bool truthy(const Json* v) {
  if (v == nullptr || v->is_null()) {
    return false;
  }
  if (v->is_boolean()) {
    return v->get<bool>();
  }
  if (v->is_number()) {
    const double d = v->get<double>();
    return d == d && d != 0;
  }
  if (v->is_string()) {
    return !v->get_ref<const std::string&>().empty();
  }
  return true;
}

const Json* member(const Json& obj, std::string_view key) {
  if (!obj.is_object()) {
    return nullptr;
  }
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::string child(const std::string& pointer, std::string_view key) {
  return absl::StrCat(pointer, "/", declarative::pointerSegment(key));
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

bool isPluginKey(std::string_view key) { return key.starts_with("x-kong-plugin-"); }
bool isValidatorKey(std::string_view key) {
  return isPluginKey(key) && key.ends_with("-request-validator");
}

std::string percentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    int hi, lo;
    const auto hex = [](char c) {
      return std::isxdigit(static_cast<unsigned char>(c))
                 ? (std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (c | 0x20) - 'a' + 10)
                 : -1;
    };
    if (s[i] == '%' && i + 2 < s.size() && (hi = hex(s[i + 1])) >= 0 &&
        (lo = hex(s[i + 2])) >= 0) {
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

struct Url {
  std::string protocol;  // "http"
  std::string hostname;
  std::string port;      // "" when neither given nor implied by the protocol
  std::string path;
};

// openapi-2-kong's parseUrl: the WHATWG URL of `text` against http://localhost, with the
// port the protocol implies when none is given.
absl::StatusOr<Url> parseUrl(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  Url url{"http", "localhost", "", ""};
  std::string_view rest = text;
  size_t colon = text.find(':');
  bool has_scheme = colon != std::string_view::npos && colon > 0 &&
                    std::isalpha(static_cast<unsigned char>(text[0]));
  for (size_t i = 0; has_scheme && i < colon; ++i) {
    const char c = text[i];
    has_scheme = std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
  }
  if (has_scheme) {
    url.protocol = lower(text.substr(0, colon));
    rest = text.substr(colon + 1);
    url.hostname.clear();
  }
  if (std::string_view(rest).starts_with("//")) {
    rest.remove_prefix(2);
    const size_t end = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
      authority.remove_prefix(at + 1);
    }
    std::string_view host = authority;
    std::string_view port;
    if (std::string_view(authority).starts_with("[")) {
      const size_t close = authority.find(']');
      if (close == std::string_view::npos) {
        return absl::InvalidArgumentError("invalid URL '" + std::string(text) + "'");
      }
      host = authority.substr(0, close + 1);
      if (close + 1 < authority.size() && authority[close + 1] == ':') {
        port = authority.substr(close + 2);
      }
    } else if (size_t c = authority.rfind(':'); c != std::string_view::npos) {
      host = authority.substr(0, c);
      port = authority.substr(c + 1);
    }
    uint32_t n = 0;
    if (!port.empty() &&
        (std::from_chars(port.data(), port.data() + port.size(), n).ptr != port.data() + port.size() ||
         n > 65535)) {
      return absl::InvalidArgumentError("invalid port in URL '" + std::string(text) + "'");
    }
    url.hostname = lower(host);
    if (!port.empty()) {
      url.port = std::to_string(n);
    }
  } else if (!has_scheme && !std::string_view(rest).starts_with("/")) {
    url.path = "/";  // a relative URL ("v1") resolves against the base's "/"
  }
  const size_t query = rest.find_first_of("?#");
  url.path += std::string(rest.substr(0, query));
  if (url.path.empty()) {
    url.path = "/";
  }
  if (url.port.empty()) {
    url.port = url.protocol == "https" ? "443" : url.protocol == "http" ? "80" : "";
  }
  return url;
}

struct Resolved {
  const Json* node;
  std::string pointer;
};

class Converter {
 public:
  Converter(const Document& doc, const OpenApiOptions& options)
      : doc_(doc), root_(doc.value), options_(options) {}

  absl::StatusOr<Json> run();

 private:
  absl::Status fail(const std::string& pointer, const std::string& message) const {
    return absl::InvalidArgumentError(placeError(doc_, pointer, message));
  }

  // The keys of an object in the file's order (the parser's map is sorted; the order of
  // paths and operations is the order of the routes openapi-2-kong writes).
  std::vector<std::string> keysInOrder(const Json& obj, const std::string& pointer) const {
    std::vector<std::pair<int, std::string>> keyed;
    for (const auto& item : obj.items()) {
      keyed.emplace_back(doc_.lines.find(child(pointer, item.key())), item.key());
    }
    std::stable_sort(keyed.begin(), keyed.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> keys;
    for (auto& [line, key] : keyed) {
      keys.push_back(std::move(key));
    }
    return keys;
  }

  absl::StatusOr<Resolved> resolve(const Json& node, const std::string& pointer) const;
  absl::StatusOr<Json> dereference(const Json& node, const std::string& pointer, int depth,
                                   std::vector<std::string>* expanding);
  absl::StatusOr<Json> fullyDereferenced(const Json& node, const std::string& pointer) {
    std::vector<std::string> expanding;
    return dereference(node, pointer, 0, &expanding);
  }

  absl::StatusOr<std::string> serverUrl(const Json& server, const std::string& pointer) const;
  absl::StatusOr<Json> objectOrEmpty(const Json* v, const std::string& pointer,
                                     const std::string& what) const;
  absl::StatusOr<Json> plugins(const Json& item, const std::string& pointer);
  absl::StatusOr<Json> plugin(const std::string& key, const Json& value,
                              const std::string& pointer);
  absl::StatusOr<Json> validatorPlugin(const Json& directive, const std::string& directive_ptr,
                                       const Json* op, const std::string& op_ptr);
  absl::StatusOr<Json> securityPlugins(const Json* security, const std::string& pointer);
  std::string routeName(const std::string& path, const Json& path_item, const std::string& method,
                        const Json& op) const;
  Json taggedWith(const Json* extra) const {
    Json tags = tags_;
    if (extra != nullptr && extra->is_array()) {
      for (const Json& t : *extra) {
        tags.push_back(t);
      }
    }
    return tags;
  }

  const Document& doc_;
  const Json& root_;
  const OpenApiOptions& options_;
  Json tags_ = Json::array();
  std::string name_;
  int64_t expanded_ = 0;
};

absl::StatusOr<Resolved> Converter::resolve(const Json& node, const std::string& pointer) const {
  Resolved r{&node, pointer};
  std::vector<std::string> chain;
  for (int hops = 0; r.node->is_object() && r.node->contains("$ref"); ++hops) {
    const Json& ref = (*r.node)["$ref"];
    const std::string ref_ptr = child(r.pointer, "$ref");
    if (!ref.is_string()) {
      return fail(ref_ptr, "$ref must be a string");
    }
    const std::string& target = ref.get_ref<const std::string&>();
    if (target.empty() || target[0] != '#') {
      return fail(ref_ptr, "only local $refs (\"#/...\") are supported, not '" + target + "'");
    }
    if (hops == kMaxRefChain) {
      return fail(ref_ptr, absl::StrCat("more than ", kMaxRefChain, " $refs in a chain"));
    }
    const std::string target_ptr = percentDecode(std::string_view(target).substr(1));
    if (std::find(chain.begin(), chain.end(), target_ptr) != chain.end() ||
        target_ptr == pointer) {
      chain.push_back(target_ptr);
      return fail(ref_ptr, "$ref cycle: #" + absl::StrJoin(chain, " -> #"));
    }
    chain.push_back(target_ptr);
    const Json* next = nullptr;
    try {
      const Json::json_pointer jp(target_ptr);
      if (root_.contains(jp)) {
        next = &root_.at(jp);
      }
    } catch (const Json::exception&) {
      return fail(ref_ptr, "invalid $ref '" + target + "'");
    }
    if (next == nullptr) {
      return fail(ref_ptr, "$ref target '" + target + "' does not exist");
    }
    r = Resolved{next, target_ptr};
  }
  return r;
}

absl::StatusOr<Json> Converter::dereference(const Json& node, const std::string& pointer,
                                            int depth, std::vector<std::string>* expanding) {
  if (++expanded_ > kMaxExpandedValues) {
    return fail(pointer, absl::StrCat("$ref expansion exceeds ", kMaxExpandedValues, " values"));
  }
  if (depth > kMaxExpandedDepth) {
    return fail(pointer, absl::StrCat("nested more than ", kMaxExpandedDepth,
                                      " levels deep once $refs are expanded"));
  }
  if (node.is_object() && node.contains("$ref")) {
    ASSIGN_OR_RETURN(Resolved r, resolve(node, pointer));
    if (std::find(expanding->begin(), expanding->end(), r.pointer) != expanding->end()) {
      return fail(child(pointer, "$ref"),
                  "$ref cycle through #" + r.pointer + " (recursive schemas cannot be expanded)");
    }
    expanding->push_back(r.pointer);
    ASSIGN_OR_RETURN(Json out, dereference(*r.node, r.pointer, depth + 1, expanding));
    expanding->pop_back();
    return out;
  }
  if (node.is_object()) {
    Json out = Json::object();
    for (const auto& item : node.items()) {
      ASSIGN_OR_RETURN(out[item.key()], dereference(item.value(), child(pointer, item.key()),
                                                    depth + 1, expanding));
    }
    return out;
  }
  if (node.is_array()) {
    Json out = Json::array();
    for (size_t i = 0; i < node.size(); ++i) {
      ASSIGN_OR_RETURN(Json item,
                       dereference(node[i], child(pointer, std::to_string(i)), depth + 1,
                                   expanding));
      out.push_back(std::move(item));
    }
    return out;
  }
  return node;
}

absl::StatusOr<std::string> Converter::serverUrl(const Json& server,
                                                 const std::string& pointer) const {
  const Json* url = member(server, "url");
  if (url == nullptr || !url->is_string()) {
    return fail(pointer, "a server needs a string 'url'");
  }
  std::string out = url->get<std::string>();
  const Json* variables = member(server, "variables");
  if (variables == nullptr || !variables->is_object()) {
    return out;
  }
  const std::string vars_ptr = child(pointer, "variables");
  for (const std::string& name : keysInOrder(*variables, vars_ptr)) {
    const Json* def = member((*variables)[name], "default");
    if (!truthy(def)) {
      return fail(child(vars_ptr, name), "Server variable \"" + name + "\" missing default value");
    }
    const std::string value = def->is_string() ? def->get<std::string>() : def->dump();
    // Only the first occurrence, as JavaScript's String.replace with a string pattern.
    const std::string placeholder = "{" + name + "}";
    if (size_t at = out.find(placeholder); at != std::string::npos) {
      out.replace(at, placeholder.size(), value);
    }
  }
  return out;
}

absl::StatusOr<Json> Converter::objectOrEmpty(const Json* v, const std::string& pointer,
                                              const std::string& what) const {
  if (!truthy(v)) {
    return Json::object();
  }
  if (!v->is_object()) {
    return fail(pointer, "expected '" + what + "' to be an object");
  }
  return *v;
}

absl::StatusOr<Json> Converter::plugin(const std::string& key, const Json& value,
                                       const std::string& pointer) {
  if (!value.is_object()) {
    return fail(pointer, "expected '" + key + "' to be an object (a plugin)");
  }
  Json out = value;
  const Json* name = member(value, "name");
  out["name"] = truthy(name) ? *name : Json(key.substr(std::string_view("x-kong-plugin-").size()));
  const Json* tags = member(value, "tags");
  if (tags != nullptr && !tags->is_null() && !tags->is_array()) {
    return fail(child(pointer, "tags"), "expected a list of tags");
  }
  out["tags"] = taggedWith(tags);
  return out;
}

absl::StatusOr<Json> Converter::plugins(const Json& item, const std::string& pointer) {
  Json out = Json::array();
  for (const std::string& key : keysInOrder(item, pointer)) {
    if (isPluginKey(key) && !isValidatorKey(key)) {
      ASSIGN_OR_RETURN(Json p, plugin(key, item[key], child(pointer, key)));
      out.push_back(std::move(p));
    }
  }
  return out;
}

// openapi-2-kong's generateRequestValidatorPlugin: the directive's own parameter_schema,
// body_schema and allowed_content_types win over those generated from the operation.
absl::StatusOr<Json> Converter::validatorPlugin(const Json& directive,
                                                const std::string& directive_ptr, const Json* op,
                                                const std::string& op_ptr) {
  if (!directive.is_object()) {
    return fail(directive_ptr, "expected the request-validator plugin to be an object");
  }
  const Json* given = member(directive, "config");
  const Json empty = Json::object();
  if (given == nullptr || !given->is_object()) {
    given = &empty;
  }
  Json config = {{"version", "draft4"}};
  Json parameter_schema;  // null: none
  Json body_schema;
  Json content_types;
  if (given->contains("parameter_schema")) {
    parameter_schema = (*given)["parameter_schema"];
  } else if (const Json* params = op ? member(*op, "parameters") : nullptr;
             params != nullptr && params->is_array() && !params->empty()) {
    parameter_schema = Json::array();
    const std::string params_ptr = child(op_ptr, "parameters");
    for (size_t i = 0; i < params->size(); ++i) {
      ASSIGN_OR_RETURN(Resolved p, resolve((*params)[i], child(params_ptr, std::to_string(i))));
      const Json& param = *p.node;
      std::string schema = "{}";  // no schema (or only `content`): allow everything
      if (const Json* s = member(param, "schema"); s != nullptr) {
        ASSIGN_OR_RETURN(Json full, fullyDereferenced(*s, child(p.pointer, "schema")));
        schema = full.dump();
      }
      const Json* in = member(param, "in");
      const std::string where = in && in->is_string() ? in->get<std::string>() : "";
      std::string style = where == "header" || where == "path" ? "simple"
                          : where == "cookie" || where == "query" ? "form"
                                                                 : "simple";
      if (const Json* st = member(param, "style"); st != nullptr && st->is_string()) {
        style = st->get<std::string>();
      }
      parameter_schema.push_back({{"in", in ? *in : Json()},
                                  {"explode", truthy(member(param, "explode"))},
                                  {"required", truthy(member(param, "required"))},
                                  {"name", member(param, "name") ? param["name"] : Json()},
                                  {"schema", schema},
                                  {"style", style}});
    }
  }
  if (const Json* body = op ? member(*op, "requestBody") : nullptr; body != nullptr) {
    ASSIGN_OR_RETURN(Resolved b, resolve(*body, child(op_ptr, "requestBody")));
    if (const Json* content = member(*b.node, "content"); content && content->is_object()) {
      content_types = Json::array();
      const std::string content_ptr = child(b.pointer, "content");
      for (const std::string& type : keysInOrder(*content, content_ptr)) {
        content_types.push_back(type);
      }
      const Json* json_media = member(*content, "application/json");
      const Json* schema = json_media ? member(*json_media, "schema") : nullptr;
      if (schema != nullptr) {
        ASSIGN_OR_RETURN(Json full, fullyDereferenced(
                                        *schema, child(child(content_ptr, "application/json"),
                                                       "schema")));
        // Nullable properties also take null (openapi-2-kong's FTI-3278 rule).
        if (Json* props = full.is_object() && full.contains("properties")
                              ? &full["properties"]
                              : nullptr;
            props != nullptr && props->is_object()) {
          for (auto& [name, prop] : props->items()) {
            if (prop.is_object() && truthy(member(prop, "nullable")) &&
                prop["nullable"].is_boolean()) {
              prop["type"] = Json::array({prop.contains("type") ? prop["type"] : Json(), "null"});
            }
          }
        }
        body_schema = full.dump();
      }
    }
  }
  if (given->contains("body_schema")) {
    body_schema = (*given)["body_schema"];
  }
  if (parameter_schema.is_null() && body_schema.is_null()) {
    body_schema = "{}";
  }
  if (!parameter_schema.is_null()) {
    config["parameter_schema"] = parameter_schema;
  }
  if (!body_schema.is_null()) {
    config["body_schema"] = body_schema;
  }
  if (const Json* t = member(*given, "allowed_content_types"); t != nullptr && !t->is_null()) {
    config["allowed_content_types"] = *t;
  } else if (!content_types.is_null()) {
    config["allowed_content_types"] = content_types;
  }
  if (const Json* v = member(*given, "verbose_response"); v != nullptr && !v->is_null()) {
    config["verbose_response"] = truthy(v);
  }
  Json out = {{"name", "request-validator"},
              {"config", std::move(config)},
              {"tags", taggedWith(member(directive, "tags"))}};
  if (const Json* enabled = member(directive, "enabled"); enabled != nullptr) {
    out["enabled"] = enabled->is_null() || truthy(enabled);
  }
  return out;
}

absl::StatusOr<Json> Converter::securityPlugins(const Json* security,
                                                const std::string& pointer) {
  Json out = Json::array();
  if (security == nullptr || !security->is_array()) {
    return out;
  }
  const Json* components = member(root_, "components");
  const Json* schemes = components ? member(*components, "securitySchemes") : nullptr;
  for (size_t i = 0; i < security->size(); ++i) {
    const Json& requirement = (*security)[i];
    const std::string req_ptr = child(pointer, std::to_string(i));
    if (!requirement.is_object()) {
      continue;
    }
    for (const std::string& name : keysInOrder(requirement, req_ptr)) {
      const Json* declared = schemes ? member(*schemes, name) : nullptr;
      if (declared == nullptr) {
        return fail(child(req_ptr, name),
                    "security scheme '" + name + "' is not in components.securitySchemes");
      }
      ASSIGN_OR_RETURN(Resolved s,
                       resolve(*declared, child("/components/securitySchemes", name)));
      const Json& scheme = *s.node;
      const Json* type = member(scheme, "type");
      const std::string kind =
          type && type->is_string() ? lower(type->get<std::string>()) : "";
      const auto text = [&](const char* key) {
        const Json* v = member(scheme, key);
        return v && v->is_string() ? v->get<std::string>() : std::string();
      };
      Json p;
      if (kind == "apikey") {
        const std::string in = text("in");
        if (in != "query" && in != "header" && in != "cookie") {
          return fail(s.pointer, "an apiKey scheme expects valid \"in\" property. Got " +
                                     (in.empty() ? "undefined" : in));
        }
        if (text("name").empty()) {
          return fail(s.pointer, "an apiKey scheme expects valid \"name\" property");
        }
        p = {{"name", "key-auth"}, {"config", {{"key_names", {text("name")}}}}};
      } else if (kind == "http") {
        if (lower(text("scheme")) != "basic") {
          return fail(s.pointer, "Only \"basic\" http scheme supported. got " + text("scheme"));
        }
        p = {{"name", "basic-auth"}};
      } else if (kind == "openidconnect") {
        if (text("openIdConnectUrl").empty()) {
          return fail(s.pointer, "invalid \"openIdConnectUrl\" property");
        }
        const Json& scopes = requirement[name];
        p = {{"name", "openid-connect"},
             {"config",
              {{"issuer", text("openIdConnectUrl")},
               {"scopes_required", scopes.is_array() ? scopes : Json::array()}}}};
      } else {
        continue;  // oauth2, mutualTLS, ...: no plugin, as openapi-2-kong
      }
      const Json* extra =
          member(scheme, "x-kong-security-" + p["name"].get<std::string>());
      if (const Json* cfg = extra ? member(*extra, "config") : nullptr; cfg && cfg->is_object()) {
        for (const auto& [k, v] : cfg->items()) {
          p["config"][k] = v;
        }
      }
      p["tags"] = taggedWith(extra ? member(*extra, "tags") : nullptr);
      out.push_back(std::move(p));
    }
  }
  return out;
}

std::string Converter::routeName(const std::string& path, const Json& path_item,
                                 const std::string& method, const Json& op) const {
  if (const Json* n = member(op, "x-kong-name"); n && n->is_string()) {
    return name_ + "-" + slugify(n->get<std::string>());
  }
  if (const Json* id = member(op, "operationId"); truthy(id) && id->is_string()) {
    return name_ + "-" + slugify(id->get<std::string>());
  }
  std::string source;
  if (const Json* n = member(path_item, "x-kong-name"); truthy(n) && n->is_string()) {
    source = n->get<std::string>();
  } else {
    // Inner slashes become dashes (the first and a last one stay, and slugify drops them).
    source = path;
    for (size_t i = 1; i + 1 < source.size(); ++i) {
      if (source[i] == '/') {
        source[i] = '-';
      }
    }
  }
  const std::string slug = slugify(source);
  return name_ + (slug.empty() ? "" : "-" + slug) + "-" + method;
}

// Keeps the first plugin of each name (openapi-2-kong's distinctByProperty).
Json distinctByName(const Json& plugins) {
  Json out = Json::array();
  std::vector<std::string> seen;
  for (const Json& p : plugins) {
    const std::string name = p["name"].is_string() ? p["name"].get<std::string>() : p["name"].dump();
    if (std::find(seen.begin(), seen.end(), name) == seen.end()) {
      seen.push_back(name);
      out.push_back(p);
    }
  }
  return out;
}

absl::StatusOr<Json> Converter::run() {
  const bool kong3 = options_.format_version == "3.0";
  if (!kong3 && options_.format_version != "1.1") {
    return absl::InvalidArgumentError("unknown _format_version '" + options_.format_version +
                                      "' (3.0 or 1.1)");
  }
  if (!root_.is_object()) {
    return fail("", "an OpenAPI document is a map");
  }
  if (root_.contains("swagger")) {
    return fail("/swagger", "Swagger 2.0 is not supported: convert the spec to OpenAPI 3 first");
  }
  const Json* version = member(root_, "openapi");
  if (version == nullptr) {
    return fail("", "not an OpenAPI 3 document: no 'openapi' field");
  }
  if (!version->is_string() || !std::string_view(version->get<std::string>()).starts_with("3.")) {
    return fail("/openapi", "expected an OpenAPI 3.x version string, got " + version->dump());
  }
  const Json* paths = member(root_, "paths");
  if (paths == nullptr || !paths->is_object()) {
    return fail(paths ? "/paths" : "", "expected 'paths' to be a map");
  }

  tags_.push_back("OAS3_import");
  if (!options_.file_tag.empty()) {
    tags_.push_back("OAS3file_" + options_.file_tag);
  }
  for (const std::string& t : options_.tags) {
    tags_.push_back(t);
  }

  // Path items, resolved, in the file's order.
  std::vector<std::pair<std::string, Resolved>> items;
  for (const std::string& path : keysInOrder(*paths, "/paths")) {
    ASSIGN_OR_RETURN(Resolved item, resolve((*paths)[path], child("/paths", path)));
    if (!item.node->is_object()) {
      return fail(item.pointer, "expected a path item (a map)");
    }
    items.emplace_back(path, std::move(item));
  }

  // Servers: the document's, then each path item's.
  std::vector<Resolved> servers;
  const auto addServers = [&](const Json* list, const std::string& pointer) -> absl::Status {
    if (list == nullptr) {
      return absl::OkStatus();
    }
    if (!list->is_array()) {
      return fail(pointer, "expected 'servers' to be a list");
    }
    for (size_t i = 0; i < list->size(); ++i) {
      ASSIGN_OR_RETURN(Resolved s, resolve((*list)[i], child(pointer, std::to_string(i))));
      servers.push_back(std::move(s));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(addServers(member(root_, "servers"), "/servers"));
  for (const auto& [path, item] : items) {
    RETURN_IF_ERROR(addServers(member(*item.node, "servers"), child(item.pointer, "servers")));
  }
  if (servers.empty()) {
    return fail("", "no servers defined in spec");
  }

  // The service.
  const Json* raw_name = member(root_, "x-kong-name");
  if (!truthy(raw_name) || !raw_name->is_string()) {
    const Json* info = member(root_, "info");
    raw_name = info ? member(*info, "title") : nullptr;
  }
  name_ = slugify(truthy(raw_name) && raw_name->is_string() ? raw_name->get<std::string>()
                                                             : "openapi");
  ASSIGN_OR_RETURN(const std::string first_url, serverUrl(*servers[0].node, servers[0].pointer));
  absl::StatusOr<Url> url = parseUrl(first_url);
  if (!url.ok()) {
    return fail(child(servers[0].pointer, "url"), std::string(url.status().message()));
  }
  const bool upstream = truthy(member(root_, "x-kong-upstream-defaults")) || servers.size() > 1;

  ASSIGN_OR_RETURN(Json service, objectOrEmpty(member(root_, "x-kong-service-defaults"),
                                               "/x-kong-service-defaults",
                                               "x-kong-service-defaults"));
  ASSIGN_OR_RETURN(Json global_plugins, plugins(root_, ""));
  const Json* global_validator = nullptr;
  std::string global_validator_ptr;
  for (const std::string& key : keysInOrder(root_, "")) {
    if (isValidatorKey(key)) {
      global_validator = &root_[key];
      global_validator_ptr = child("", key);
      break;
    }
  }
  const Json empty_directive = Json::object();
  if (global_validator != nullptr && !truthy(global_validator)) {
    global_validator = &empty_directive;  // a bare key: generate everything
  }
  if (global_validator != nullptr) {
    ASSIGN_OR_RETURN(Json v,
                     validatorPlugin(*global_validator, global_validator_ptr, nullptr, ""));
    global_plugins.push_back(std::move(v));
  }
  global_plugins = distinctByName(global_plugins);
  ASSIGN_OR_RETURN(Json service_security, securityPlugins(member(root_, "security"), "/security"));
  for (Json& p : service_security) {
    global_plugins.push_back(std::move(p));
  }

  service["name"] = name_;
  service["protocol"] = url->protocol;
  service["host"] = upstream ? name_ + ".upstream" : url->hostname;
  service["port"] = url->port.empty() ? 80 : std::stoi(url->port);
  service["path"] = url->path;
  service["plugins"] = std::move(global_plugins);
  service["routes"] = Json::array();
  service["tags"] = tags_;

  ASSIGN_OR_RETURN(const Json root_route_defaults,
                   objectOrEmpty(member(root_, "x-kong-route-defaults"),
                                 "/x-kong-route-defaults", "x-kong-route-defaults"));
  for (const auto& [path, item] : items) {
    const Json& path_item = *item.node;
    Json path_route_defaults = root_route_defaults;
    if (const Json* d = member(path_item, "x-kong-route-defaults"); truthy(d)) {
      ASSIGN_OR_RETURN(path_route_defaults,
                       objectOrEmpty(d, child(item.pointer, "x-kong-route-defaults"),
                                     "x-kong-route-defaults"));
    }
    const Json* path_validator = nullptr;
    std::string path_validator_ptr;
    for (const std::string& key : keysInOrder(path_item, item.pointer)) {
      if (isValidatorKey(key)) {
        path_validator = truthy(&path_item[key]) ? &path_item[key] : &empty_directive;
        path_validator_ptr = child(item.pointer, key);
        break;
      }
    }
    ASSIGN_OR_RETURN(const Json path_plugins, plugins(path_item, item.pointer));

    for (const std::string& method : keysInOrder(path_item, item.pointer)) {
      if (std::find(std::begin(kMethods), std::end(kMethods), method) == std::end(kMethods)) {
        continue;
      }
      const Json& op = path_item[method];
      const std::string op_ptr = child(item.pointer, method);
      if (!truthy(&op)) {
        continue;
      }
      if (!op.is_object()) {
        return fail(op_ptr, "expected an operation (a map)");
      }
      Json route = path_route_defaults;
      if (const Json* d = member(op, "x-kong-route-defaults"); truthy(d)) {
        ASSIGN_OR_RETURN(route, objectOrEmpty(d, child(op_ptr, "x-kong-route-defaults"),
                                              "x-kong-route-defaults"));
      }
      route["tags"] = tags_;
      route["name"] = routeName(path, path_item, method, op);
      route["methods"] = Json::array({upper(method)});
      route["paths"] = Json::array({pathToRegex(path, kong3)});
      if (!route.contains("strip_path")) {
        // Kong's default (true) would strip every request down to "/": these paths are the
        // full request path.
        route["strip_path"] = false;
      }

      ASSIGN_OR_RETURN(Json route_plugins, plugins(op, op_ptr));
      const Json* validator = path_validator ? path_validator : global_validator;
      std::string validator_ptr = path_validator ? path_validator_ptr : global_validator_ptr;
      for (const std::string& key : keysInOrder(op, op_ptr)) {
        if (isValidatorKey(key)) {
          validator = truthy(&op[key]) ? &op[key] : &empty_directive;
          validator_ptr = child(op_ptr, key);
          break;
        }
      }
      if (validator != nullptr) {
        ASSIGN_OR_RETURN(Json v, validatorPlugin(*validator, validator_ptr, &op, op_ptr));
        route_plugins.push_back(std::move(v));
      }
      for (const Json& p : path_plugins) {
        route_plugins.push_back(p);
      }
      route_plugins = distinctByName(route_plugins);
      ASSIGN_OR_RETURN(Json security, securityPlugins(member(op, "security"),
                                                      child(op_ptr, "security")));
      for (Json& p : security) {
        route_plugins.push_back(std::move(p));
      }
      if (!route_plugins.empty()) {
        route["plugins"] = std::move(route_plugins);
      }
      service["routes"].push_back(std::move(route));
    }
  }

  Json config = {{"_format_version", options_.format_version},
                 {"services", Json::array({std::move(service)})}};
  if (upstream) {
    ASSIGN_OR_RETURN(Json up, objectOrEmpty(member(root_, "x-kong-upstream-defaults"),
                                            "/x-kong-upstream-defaults",
                                            "x-kong-upstream-defaults"));
    up["name"] = name_ + ".upstream";
    up["targets"] = Json::array();
    up["tags"] = tags_;
    for (const Resolved& s : servers) {
      ASSIGN_OR_RETURN(const std::string text, serverUrl(*s.node, s.pointer));
      absl::StatusOr<Url> u = parseUrl(text);
      if (!u.ok()) {
        return fail(child(s.pointer, "url"), std::string(u.status().message()));
      }
      if (!u->hostname.empty()) {
        up["targets"].push_back(
            {{"target", u->port.empty() ? u->hostname : u->hostname + ":" + u->port},
             {"tags", tags_}});
      }
    }
    config["upstreams"] = Json::array({std::move(up)});
  }
  return config;
}

// slugify's table for Latin-1 (U+00A2..U+00FF); "" drops the character.
const char* latin1(uint32_t cp) {
  static constexpr const char* kFromC0[64] = {
      "A", "A", "A", "A", "A", "A", "AE", "C", "E", "E", "E", "E", "I", "I", "I",  "I",
      "D", "N", "O", "O", "O", "O", "O",  "",  "O", "U", "U", "U", "U", "Y", "TH", "ss",
      "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i",  "i",
      "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "y"};
  if (cp >= 0xC0 && cp <= 0xFF) {
    return kFromC0[cp - 0xC0];
  }
  switch (cp) {
    case 0xA2: return "cent";
    case 0xA3: return "pound";
    case 0xA4: return "currency";
    case 0xA5: return "yen";
    case 0xA9: return "(c)";
    case 0xAA: return "a";
    case 0xAE: return "(r)";
    case 0xBA: return "o";
    case 0x2013: return "-";
    case 0x2018:
    case 0x2019: return "'";
    case 0x20AC: return "euro";
    default: return "";
  }
}

bool isSlugSpace(uint32_t cp) {
  return cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0xA0 || cp == 0xFEFF ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

}  // namespace

std::string slugify(std::string_view text) {
  // Characters kept besides ASCII letters, digits and whitespace (slugify's default `remove`).
  static constexpr std::string_view kKept = "$*_+~.()'\"!-:@";
  std::string kept;  // whitespace normalized to ' '
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    uint32_t cp = c;
    size_t len = 1;
    if (c >= 0x80) {
      len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      cp = len == 1 ? 0xFFFD : (c & (0xFF >> (len + 1)));
      for (size_t k = 1; k < len; ++k) {
        cp = i + k < text.size() ? (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F)
                                 : 0xFFFD;
      }
    }
    i += len;
    std::string mapped;
    switch (cp) {
      case '$': mapped = "dollar"; break;
      case '%': mapped = "percent"; break;
      case '&': mapped = "and"; break;
      case '<': mapped = "less"; break;
      case '>': mapped = "greater"; break;
      case '|': mapped = "or"; break;
      case '_': mapped = " "; break;  // the replacement character itself counts as a space
      default:
        if (cp < 0x80) {
          mapped = std::string(1, static_cast<char>(cp));
        } else if (isSlugSpace(cp)) {
          mapped = " ";
        } else {
          mapped = latin1(cp);
        }
    }
    for (char m : mapped) {
      const auto u = static_cast<unsigned char>(m);
      if (std::isalnum(u) || kKept.find(m) != std::string_view::npos) {
        kept += m;
      } else if (u == ' ' || (u >= '\t' && u <= '\r')) {
        kept += ' ';
      }
    }
  }
  // Trim, then each run of spaces becomes one '_'.
  std::string out;
  bool pending = false;
  for (char c : kept) {
    if (c == ' ') {
      pending = !out.empty();
      continue;
    }
    if (pending) {
      out += '_';
      pending = false;
    }
    out += c;
  }
  return out;
}

std::string pathToRegex(std::string_view path, bool kong3) {
  std::string escaped;
  for (char c : path) {
    if (c == '$' || c == '(' || c == ')') {
      escaped += '\\';
    }
    escaped += c;
  }
  std::string out;
  for (size_t i = 0; i < escaped.size();) {
    const size_t close = escaped[i] == '{' ? escaped.find('}', i + 1) : std::string::npos;
    if (close == std::string::npos || close == i + 1 ||
        escaped.compare(close + 1, 3, "://") == 0) {
      out += escaped[i++];
      continue;
    }
    std::string name = escaped.substr(i + 1, close - i - 1);
    if (kong3) {
      std::replace(name.begin(), name.end(), '-', '_');  // not valid in a capture's name
    }
    absl::StrAppend(&out, "(?<", name, ">[^/]+)");
    i = close + 1;
  }
  if (kong3 && !std::string_view(out).starts_with("~")) {
    out.insert(0, "~");
  }
  return out + "$";
}

absl::StatusOr<Json> openApiToKong(const Document& spec, const OpenApiOptions& options) {
  try {
    Converter converter(spec, options);
    return converter.run();
  } catch (const std::exception& e) {
    // nlohmann's type errors on a shape not checked above: one line, never a crash.
    return absl::InvalidArgumentError(spec.name + ": cannot convert: " + e.what());
  }
}

absl::StatusOr<OpenApi2ConfigOptions> parseOpenApi2ConfigArgs(
    const std::vector<std::string_view>& args) {
  OpenApi2ConfigOptions o;
  bool have_output = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string value;
    ASSIGN_OR_RETURN(bool output, takeFlag(args, &i, {"-o", "--output", "--output-file"}, &value));
    if (output) {
      o.output = value;
      have_output = true;
      continue;
    }
    ASSIGN_OR_RETURN(bool format, takeFlag(args, &i, {"--format"}, &value));
    if (format) {
      if (value != "3.0" && value != "1.1") {
        return absl::InvalidArgumentError("openapi2config: --format is 3.0 or 1.1, not '" +
                                          value + "'");
      }
      o.format_version = value;
      continue;
    }
    ASSIGN_OR_RETURN(bool tag, takeFlag(args, &i, {"--select-tag"}, &value));
    if (tag) {
      o.tags.push_back(value);
      continue;
    }
    ASSIGN_OR_RETURN(bool tags, takeFlag(args, &i, {"--tags"}, &value));
    if (tags) {
      for (absl::string_view t : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        o.tags.emplace_back(t);
      }
      continue;
    }
    if (args[i] != "-" && std::string_view(args[i]).starts_with("-")) {
      return absl::InvalidArgumentError("openapi2config: unknown option '" +
                                        std::string(args[i]) + "'");
    }
    if (!o.spec.empty()) {
      return absl::InvalidArgumentError("openapi2config: one spec file at a time");
    }
    o.spec = std::string(args[i]);
  }
  if (o.spec.empty()) {
    return absl::InvalidArgumentError("openapi2config: give the spec file (- for stdin)");
  }
  if (!have_output) {
    return absl::InvalidArgumentError("openapi2config: give the output file with -o (- for stdout)");
  }
  return o;
}

int runOpenApi2Config(const OpenApi2ConfigOptions& options, FILE* err) {
  if (options.spec.empty()) {
    std::fprintf(err, "porticoctl openapi2config: give the spec file (or - for stdin)\n");
    return 1;
  }
  absl::StatusOr<Document> doc = readDocument(options.spec);
  if (!doc.ok()) {
    std::fprintf(err, "porticoctl openapi2config: %s\n", std::string(doc.status().message()).c_str());
    return 1;
  }
  OpenApiOptions convert;
  convert.format_version = options.format_version;
  convert.tags = options.tags;
  if (options.spec != "-") {
    const size_t slash = options.spec.rfind('/');
    convert.file_tag = slash == std::string::npos ? options.spec : options.spec.substr(slash + 1);
  }
  absl::StatusOr<Json> config = openApiToKong(*doc, convert);
  if (!config.ok()) {
    std::fprintf(err, "porticoctl openapi2config: %s\n",
                 std::string(config.status().message()).c_str());
    return 1;
  }
  const std::string text = render(*config, outputFormatFor(options.output));
  const declarative::LoadResult check = declarative::loadDeclarative(text);
  if (!check.ok()) {
    std::fprintf(err,
                 "porticoctl openapi2config: warning: Portico does not load the generated "
                 "config as it is:\n%s",
                 check.describe(options.output == "-" ? "<output>" : options.output, 20).c_str());
  }
  if (absl::Status st = writeOutput(options.output, text);
      !st.ok()) {
    std::fprintf(err, "porticoctl openapi2config: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace portico::cli
