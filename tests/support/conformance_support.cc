#include "tests/support/conformance_support.h"

#include <cctype>
#include <regex>

#include "tests/support/test_support.h"

namespace portico::testing {

using nlohmann::json;

// YAML -> JSON with YAML 1.2 core-schema typing of plain scalars; quoted scalars stay strings.
json toJson(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      json arr = json::array();
      for (const auto& e : n) {
        arr.push_back(toJson(e));
      }
      return arr;
    }
    case YAML::NodeType::Map: {
      json obj = json::object();
      for (const auto& kv : n) {
        obj[kv.first.as<std::string>()] = toJson(kv.second);
      }
      return obj;
    }
    case YAML::NodeType::Scalar:
      break;
  }
  const std::string s = n.Scalar();
  if (n.Tag() == "!") {
    return s;
  }
  if (s == "null" || s == "~") {
    return nullptr;
  }
  if (s == "true" || s == "false") {
    return s == "true";
  }
  static const std::regex kInt("-?[0-9]+"), kFloat("-?[0-9]+\\.[0-9]+");
  if (std::regex_match(s, kInt)) {
    return std::stoll(s);
  }
  if (std::regex_match(s, kFloat)) {
    return std::stod(s);
  }
  return s;
}

std::string uriEscape(const std::string& in) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (char c : in) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      out += {'%', kHex[u >> 4], kHex[u & 15]};
    }
  }
  return out;
}

std::string substitute(const std::string& in, const Vars& vars) {
  static const std::regex kVar(R"(\$\{([a-zA-Z0-9_]+)(\|uri_escape)?\})");
  std::string out;
  auto begin = std::sregex_iterator(in.begin(), in.end(), kVar);
  size_t last = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    out += in.substr(last, it->position() - last);
    auto v = vars.find((*it)[1].str());
    const std::string value = v == vars.end() ? "" : v->second;
    out += (*it)[2].matched ? uriEscape(value) : value;
    last = it->position() + it->length();
  }
  return out + in.substr(last);
}

json substitute(const json& in, const Vars& vars) {
  if (in.is_string()) {
    return substitute(in.get<std::string>(), vars);
  }
  if (in.is_structured()) {
    nlohmann::json out = in;
    for (auto it = out.begin(); it != out.end(); ++it) {
      *it = substitute(*it, vars);
    }
    return out;
  }
  return in;
}

const json* lookup(const json& body, const std::string& path) {
  const json* node = &body;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string key = path.substr(start, dot == std::string::npos ? dot : dot - start);
    if (!node->is_object() || !node->contains(key)) {
      return nullptr;
    }
    node = &(*node)[key];
    if (dot == std::string::npos) {
      return node;
    }
    start = dot + 1;
  }
}

std::string conformanceCasesPath(const std::string& file) {
  return sourceDir() + "/tests/conformance/" + file;
}

}  // namespace portico::testing
