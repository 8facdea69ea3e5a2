#include "cli/yaml_writer.h"

#include <algorithm>
#include <cctype>
#include <string_view>

#include "absl/strings/ascii.h"

namespace portico::cli {
namespace {

using Json = nlohmann::json;

std::string scalar(const Json& v) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (isPlainYamlString(s)) {
      return s;
    }
    return v.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
  if (v.is_object()) {
    return "{}";
  }
  if (v.is_array()) {
    return "[]";
  }
  return v.dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool isInline(const Json& v) { return !v.is_structured() || v.empty(); }

// Writes a non-empty container, every line starting at `indent` spaces. Sequences under a map
// key sit at the key's own indentation (the shape of Kong's and decK's files).
void emit(const Json& v, size_t indent, std::string& out) {
  const std::string pad(indent, ' ');
  if (v.is_object()) {
    for (const auto& [key, value] : v.items()) {
      out += pad;
      out += scalar(Json(key));
      out += ':';
      if (isInline(value)) {
        out += ' ';
        out += scalar(value);
        out += '\n';
      } else {
        out += '\n';
        emit(value, value.is_array() ? indent : indent + 2, out);
      }
    }
    return;
  }
  for (const Json& item : v) {
    if (isInline(item)) {
      out += pad;
      out += "- ";
      out += scalar(item);
      out += '\n';
      continue;
    }
    // The item's first line takes the dash in place of its indentation's last two spaces.
    std::string child;
    emit(item, indent + 2, child);
    out += pad;
    out += "- ";
    out.append(child, indent + 2, std::string::npos);
  }
}

}  // namespace

bool isPlainYamlString(const std::string& s) {
  if (s.empty() || s.front() == ' ' || s.back() == ' ' || s.back() == ':') {
    return false;
  }
  // Indicators that start a non-plain node, and starts of numbers (digits, signs, ".5",
  // ".inf"): quoting those costs nothing and no reader can take them for a number.
  static constexpr std::string_view kBadFirst = "-?:,[]{}#&*!|>'\"%@`+.0123456789";
  if (kBadFirst.find(s.front()) != std::string_view::npos) {
    return false;
  }
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) {
      return false;  // control characters, and non-ASCII kept simple by quoting
    }
  }
  if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos) {
    return false;
  }
  // Words YAML 1.2's core schema or YAML 1.1 (still read by many tools) take for null,
  // booleans or merge/value keys.
  static constexpr std::string_view kReserved[] = {"null", "~",   "true", "false", "yes", "no",
                                                   "on",   "off", "y",    "n",     "<<",  "="};
  const std::string l = absl::AsciiStrToLower(absl::string_view(s.data(), s.size()));
  return std::find(std::begin(kReserved), std::end(kReserved), l) == std::end(kReserved);
}

std::string toYaml(const Json& value) {
  if (isInline(value)) {
    return scalar(value) + "\n";
  }
  std::string out;
  emit(value, 0, out);
  return out;
}

}  // namespace portico::cli
