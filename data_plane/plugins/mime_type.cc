#include "data_plane/plugins/mime_type.h"

#include <algorithm>
#include <cctype>

namespace portico::dp::plugins {
namespace {

bool isToken(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u < 33 || u > 126) return false;
  return std::string_view("()<>@,;:\\\"/[]?={}").find(c) == std::string_view::npos;
}

std::string lower(std::string_view v) {
  std::string o(v);
  std::transform(o.begin(), o.end(), o.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return o;
}

}  // namespace

std::optional<MediaType> parseMediaType(std::string_view mt) {
  auto space = [](char c) { return c == ' ' || c == '\t'; };
  while (!mt.empty() && space(mt.front())) mt.remove_prefix(1);
  while (!mt.empty() && space(mt.back())) mt.remove_suffix(1);
  size_t i = 0;
  auto token = [&](std::string_view* out) {
    const size_t b = i;
    while (i < mt.size() && isToken(mt[i])) ++i;
    *out = mt.substr(b, i - b);
    return i > b;
  };
  MediaType out;
  std::string_view type, subtype;
  if (mt == "*") {
    out.type = out.subtype = "*";
    return out;
  }
  if (!token(&type) || i >= mt.size() || mt[i] != '/') return std::nullopt;
  ++i;
  if (!token(&subtype)) return std::nullopt;
  out.type = lower(type);
  out.subtype = lower(subtype);
  // Parameters: *( spacing ";" spacing attribute "=" (token | quoted-string) ), then the end.
  while (i < mt.size()) {
    while (i < mt.size() && space(mt[i])) ++i;
    if (i >= mt.size() || mt[i] != ';') return std::nullopt;
    ++i;
    while (i < mt.size() && space(mt[i])) ++i;
    std::string_view attr, val;
    if (!token(&attr) || i >= mt.size() || mt[i] != '=') return std::nullopt;
    ++i;
    std::string value;
    if (i < mt.size() && mt[i] == '"') {
      ++i;
      while (i < mt.size() && mt[i] != '"') {
        if (mt[i] == '\\' && i + 1 < mt.size()) ++i;
        value.push_back(mt[i++]);
      }
      if (i >= mt.size()) return std::nullopt;
      ++i;
    } else if (token(&val)) {
      value.assign(val);
    } else {
      return std::nullopt;
    }
    out.params[lower(attr)] = std::move(value);
  }
  return out;
}

bool includes(const MediaType& self, const MediaType& other) {
  if (self.type == "*") return true;
  if (self.type != other.type) return false;
  if (self.subtype == other.subtype || self.subtype == "*") return true;
  const std::string suffix = "+" + self.subtype;
  return self.subtype.find('+') == std::string::npos && other.subtype.size() >= suffix.size() &&
         other.subtype.compare(other.subtype.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace portico::dp::plugins
