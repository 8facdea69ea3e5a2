#include "control_plane/admin_api/catalog_openapi.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/declarative/declarative.h"
#include "common/declarative/yaml_json.h"

namespace portico::cp::catalog {
namespace {

constexpr const char* kOperationMethods[] = {"get",     "put",  "post",  "delete",
                                             "options", "head", "patch", "trace"};

bool isOpenApi3Version(const std::string& v) {
  // "3.<minor>.<patch>", optionally with a suffix ("3.1.0-rc1").
  size_t i = 0;
  const auto digits = [&]() {
    const size_t from = i;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) {
      ++i;
    }
    return i > from;
  };
  if (v.rfind("3.", 0) != 0) {
    return false;
  }
  i = 2;
  if (!digits() || i >= v.size() || v[i] != '.') {
    return false;
  }
  ++i;
  return digits() && (i == v.size() || v[i] == '-');
}

class Checker {
 public:
  Checker(const Json& doc, size_t max_issues) : doc_(doc), max_(max_issues) {}

  std::vector<OpenApiIssue> run() {
    if (!doc_.is_object()) {
      add("", "the document must be an object");
      return std::move(issues_);
    }
    checkVersion();
    checkInfo();
    if (const Json* servers = member(doc_, "servers")) {
      checkServers(*servers, "/servers");
    }
    checkPaths();
    if (const Json* tags = member(doc_, "tags")) {
      if (!tags->is_array()) {
        add("/tags", "must be an array");
      } else {
        for (size_t i = 0; i < tags->size(); ++i) {
          const std::string at = absl::StrCat("/tags/", i);
          if (!(*tags)[i].is_object()) {
            add(at, "must be an object");
          } else {
            requireString((*tags)[i], at, "name");
          }
        }
      }
    }
    for (const char* key : {"components", "webhooks"}) {
      if (const Json* v = member(doc_, key); v != nullptr && !v->is_object()) {
        add(std::string("/") + key, "must be an object");
      }
    }
    return std::move(issues_);
  }

 private:
  static const Json* member(const Json& object, const char* key) {
    auto it = object.find(key);
    return it == object.end() ? nullptr : &*it;
  }

  void add(std::string pointer, std::string reason) {
    if (issues_.size() < max_) {
      issues_.push_back({std::move(pointer), std::move(reason), 0});
    }
  }

  // A string member that must be there.
  void requireString(const Json& object, const std::string& at, const char* key) {
    const Json* v = member(object, key);
    if (v == nullptr) {
      add(at + "/" + key, "required field missing");
    } else if (!v->is_string()) {
      add(at + "/" + key, "must be a string");
    }
  }
  void optionalString(const Json& object, const std::string& at, const char* key) {
    if (const Json* v = member(object, key); v != nullptr && !v->is_string()) {
      add(at + "/" + key, "must be a string");
    }
  }

  void checkVersion() {
    const Json* v = member(doc_, "openapi");
    if (v == nullptr) {
      add("/openapi", member(doc_, "swagger") != nullptr
                          ? "required field missing (Swagger 2.0 documents are not supported: "
                            "convert the document to OpenAPI 3)"
                          : "required field missing");
      return;
    }
    if (!v->is_string() || !isOpenApi3Version(v->get<std::string>())) {
      add("/openapi", "must be an OpenAPI 3.x version string such as \"3.0.3\" or \"3.1.0\"");
      return;
    }
    v30_ = v->get<std::string>().rfind("3.0.", 0) == 0;
  }

  void checkInfo() {
    const Json* info = member(doc_, "info");
    if (info == nullptr) {
      add("/info", "required field missing");
    } else if (!info->is_object()) {
      add("/info", "must be an object");
    } else {
      requireString(*info, "/info", "title");
      requireString(*info, "/info", "version");
    }
  }

  void checkServers(const Json& servers, const std::string& at) {
    if (!servers.is_array()) {
      add(at, "must be an array");
      return;
    }
    for (size_t i = 0; i < servers.size(); ++i) {
      const std::string item = at + "/" + std::to_string(i);
      if (!servers[i].is_object()) {
        add(item, "must be an object");
      } else {
        requireString(servers[i], item, "url");
      }
    }
  }

  void checkParameters(const Json& params, const std::string& at) {
    if (!params.is_array()) {
      add(at, "must be an array");
      return;
    }
    for (size_t i = 0; i < params.size(); ++i) {
      const std::string item = at + "/" + std::to_string(i);
      const Json& p = params[i];
      if (!p.is_object()) {
        add(item, "must be an object");
        continue;
      }
      if (p.contains("$ref")) {
        optionalString(p, item, "$ref");
        continue;
      }
      requireString(p, item, "name");
      const Json* in = member(p, "in");
      if (in == nullptr) {
        add(item + "/in", "required field missing");
      } else if (!in->is_string() ||
                 (*in != "query" && *in != "header" && *in != "path" && *in != "cookie")) {
        add(item + "/in", "must be one of query, header, path, cookie");
      } else if (*in == "path" && p.value("required", Json()) != true) {
        add(item + "/required", "must be true for a path parameter");
      }
    }
  }

  void checkOperation(const Json& op, const std::string& at) {
    if (!op.is_object()) {
      add(at, "must be an object");
      return;
    }
    for (const char* key : {"summary", "description"}) {
      optionalString(op, at, key);
    }
    if (const Json* id = member(op, "operationId")) {
      if (!id->is_string()) {
        add(at + "/operationId", "must be a string");
      } else if (auto [it, fresh] = operation_ids_.emplace(id->get<std::string>(), at); !fresh) {
        add(at + "/operationId",
            "duplicate operationId '" + it->first + "' (also at " + it->second + ")");
      }
    }
    if (const Json* tags = member(op, "tags")) {
      if (!tags->is_array()) {
        add(at + "/tags", "must be an array of strings");
      } else {
        for (size_t i = 0; i < tags->size(); ++i) {
          if (!(*tags)[i].is_string()) {
            add(at + absl::StrCat("/tags/", i), "must be a string");
          }
        }
      }
    }
    if (const Json* params = member(op, "parameters")) {
      checkParameters(*params, at + "/parameters");
    }
    if (const Json* body = member(op, "requestBody"); body != nullptr && !body->is_object()) {
      add(at + "/requestBody", "must be an object");
    }
    if (const Json* servers = member(op, "servers")) {
      checkServers(*servers, at + "/servers");
    }
    const Json* responses = member(op, "responses");
    if (responses == nullptr) {
      if (v30_) {
        add(at + "/responses", "required field missing");
      }
    } else if (!responses->is_object()) {
      add(at + "/responses", "must be an object");
    }
  }

  void checkPaths() {
    const Json* paths = member(doc_, "paths");
    if (paths == nullptr) {
      if (v30_) {
        add("/paths", "required field missing");
      } else if (member(doc_, "components") == nullptr && member(doc_, "webhooks") == nullptr) {
        add("/paths",
            "required field missing (an OpenAPI 3.1 document needs paths, components "
            "or webhooks)");
      }
      return;
    }
    if (!paths->is_object()) {
      add("/paths", "must be an object");
      return;
    }
    for (auto it = paths->begin(); it != paths->end(); ++it) {
      const std::string at = absl::StrCat("/paths/", declarative::pointerSegment(it.key()));
      if (it.key().rfind("x-", 0) == 0) {
        continue;  // an extension
      }
      if (it.key().empty() || it.key()[0] != '/') {
        add(at, "a path must start with '/'");
        continue;
      }
      const Json& item = *it;
      if (!item.is_object()) {
        add(at, "must be an object");
        continue;
      }
      for (const char* key : {"summary", "description", "$ref"}) {
        optionalString(item, at, key);
      }
      if (const Json* params = member(item, "parameters")) {
        checkParameters(*params, at + "/parameters");
      }
      if (const Json* servers = member(item, "servers")) {
        checkServers(*servers, at + "/servers");
      }
      for (const char* method : kOperationMethods) {
        if (const Json* op = member(item, method)) {
          checkOperation(*op, at + "/" + method);
        }
      }
    }
  }

  const Json& doc_;
  const size_t max_;
  bool v30_ = false;
  std::map<std::string, std::string> operation_ids_;  // operationId -> where first seen
  std::vector<OpenApiIssue> issues_;
};

// Appends `text` to *out as it is (PostgreSQL's parser splits it: hyphenated words are
// indexed whole and in parts, as a query of them is), after a space, if it fits within
// kMaxSpecTermBytes. False once full.
bool appendText(std::string_view text, std::string* out) {
  if (text.empty()) {
    return true;
  }
  if (out->size() + text.size() + 1 > kMaxSpecTermBytes) {
    return false;
  }
  if (!out->empty()) {
    out->push_back(' ');
  }
  out->append(text);
  return true;
}

// Appends the words of `text` (runs of letters and digits: a path's segments and `{param}`
// names), each followed by its parts when it is written in camelCase or mixes in digits
// ("listUserOrders" -> "listUserOrders list User Orders"), which the parser keeps whole.
bool appendWords(std::string_view text, std::string* out) {
  std::string word;
  const auto flush = [&]() {
    if (word.empty()) {
      return true;
    }
    std::string parts;
    for (size_t i = 0; i < word.size(); ++i) {
      const auto c = static_cast<unsigned char>(word[i]);
      const auto prev = i > 0 ? static_cast<unsigned char>(word[i - 1]) : 0;
      if (i > 0 && ((std::isupper(c) && std::islower(prev)) ||
                    (std::isdigit(c) != 0) != (std::isdigit(prev) != 0))) {
        parts.push_back(' ');
      }
      parts.push_back(static_cast<char>(c));
    }
    const bool ok = appendText(parts.size() > word.size() ? word + " " + parts : word, out);
    word.clear();
    return ok;
  };
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c >= 0x80) {  // non-ASCII letters stay in the word
      word.push_back(ch);
    } else if (!flush()) {
      return false;
    }
  }
  return flush();
}

// An operationId: as written when it holds punctuation ("invoices.get-one"), and its words.
bool appendIdentifier(std::string_view id, std::string* out) {
  const bool punctuated = std::any_of(id.begin(), id.end(), [](char c) {
    return !std::isalnum(static_cast<unsigned char>(c)) && static_cast<unsigned char>(c) < 0x80;
  });
  return (!punctuated || appendText(id, out)) && appendWords(id, out);
}

}  // namespace

std::string OpenApiIssue::describe() const {
  std::string out = absl::StrCat("at ", pointer.empty() ? "/" : pointer, ": ", reason);
  if (line > 0) {
    absl::StrAppend(&out, " (line ", line, ")");
  }
  return out;
}

std::vector<OpenApiIssue> validateOpenApi(const Json& doc, size_t max_issues) {
  return Checker(doc, max_issues).run();
}

std::string openApiSearchTerms(const Json& doc) {
  std::string out;
  if (!doc.is_object()) {
    return out;
  }
  const auto text = [](const Json& object, const char* key) -> std::string_view {
    auto it = object.find(key);
    return it != object.end() && it->is_string()
               ? std::string_view(it->get_ref<const std::string&>())
               : std::string_view();
  };
  if (auto info = doc.find("info"); info != doc.end() && info->is_object()) {
    if (!appendText(text(*info, "title"), &out)) {
      return out;
    }
  }
  auto paths = doc.find("paths");
  if (paths == doc.end() || !paths->is_object()) {
    return out;
  }
  for (auto it = paths->begin(); it != paths->end(); ++it) {
    if (!it->is_object()) {
      continue;
    }
    if (!appendWords(it.key(), &out)) {
      return out;
    }
    for (const char* method : kOperationMethods) {
      auto op = it->find(method);
      if (op == it->end() || !op->is_object()) {
        continue;
      }
      if (!appendIdentifier(text(*op, "operationId"), &out) ||
          !appendText(text(*op, "summary"), &out)) {
        return out;
      }
      if (auto tags = op->find("tags"); tags != op->end() && tags->is_array()) {
        for (const Json& tag : *tags) {
          if (tag.is_string() && !appendText(tag.get_ref<const std::string&>(), &out)) {
            return out;
          }
        }
      }
    }
  }
  return out;
}

SpecRead readSpec(const Json& value) {
  SpecRead r;
  if (value.is_object()) {
    r.text = value.dump();
    r.bytes = r.text.size();
    if (r.bytes > kMaxSpecBytes) {
      r.too_large = true;
      r.text.clear();
      return r;
    }
    r.format = "json";
    r.issues = validateOpenApi(value);
    if (r.issues.empty()) {
      r.terms = openApiSearchTerms(value);
    }
    return r;
  }
  if (!value.is_string()) {
    r.issues.push_back(
        {"", "must be an OpenAPI document: a JSON object, or its JSON or YAML text", 0});
    return r;
  }
  const std::string& text = value.get_ref<const std::string&>();
  r.bytes = text.size();
  if (r.bytes > kMaxSpecBytes) {
    r.too_large = true;
    return r;
  }
  declarative::YamlParse parsed =
      declarative::parseYaml(text, declarative::LoadOptions{}.yamlLimits());
  if (!parsed.ok) {
    r.issues.push_back({"", "not a JSON or YAML document: " + parsed.error, 0});
    return r;
  }
  const size_t first = text.find_first_not_of(" \t\r\n");
  r.format = first != std::string::npos && text[first] == '{' ? "json" : "yaml";
  r.issues = validateOpenApi(parsed.value);
  for (OpenApiIssue& issue : r.issues) {
    issue.line = declarative::lineOf(parsed.lines, issue.pointer);
  }
  if (r.issues.empty()) {
    r.terms = openApiSearchTerms(parsed.value);
    r.text = text;
  }
  return r;
}

}  // namespace portico::cp::catalog
