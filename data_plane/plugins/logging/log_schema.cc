#include "data_plane/plugins/logging/log_schema.h"

#include <cctype>

namespace portico::dp::plugins::logging {

config::Field luaCodeField() {
  using config::Field;
  return Field::map("custom_fields_by_lua", Field::string("key"), Field::string("value"))
      .validator([](config::Json& v) -> std::string {
        return v.is_object() && !v.empty() ? kLuaRefused : "";
      });
}

config::PluginSchema logPluginSchema(std::string name, int32_t priority,
                                     std::vector<config::Field> fields) {
  config::PluginSchema p = config::httpPluginSchema(std::move(name), priority, std::move(fields));
  p.protocols = config::jsonList(
      {"grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp"});
  p.default_protocols = config::httpProtocols();
  return p;
}

std::string parseUrl(const std::string& text, Url* out) {
  std::string_view s = text;
  if (const size_t hash = s.find('#'); hash != std::string_view::npos) {
    s = s.substr(0, hash);
  }
  // scheme: ^[%w][%w%+%-%.]*:
  size_t i = 0;
  if (!s.empty() && std::isalnum(static_cast<unsigned char>(s[0]))) {
    i = 1;
    while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '+' ||
                            s[i] == '-' || s[i] == '.')) {
      ++i;
    }
  }
  std::string scheme;
  if (i > 0 && i < s.size() && s[i] == ':') {
    scheme.assign(s.substr(0, i));
    s.remove_prefix(i + 1);
  }
  if (s.substr(0, 2) != "//") {
    return "missing host in url";
  }
  s.remove_prefix(2);
  const size_t auth_end = s.find_first_of("/?");
  std::string_view authority = s.substr(0, auth_end);
  std::string_view rest = auth_end == std::string_view::npos ? "" : s.substr(auth_end);
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    out->userinfo.assign(authority.substr(0, at));
    authority.remove_prefix(at + 1);
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return "could not parse url. invalid host";
    }
    out->host.assign(authority.substr(1, close - 1));
    if (close + 1 < authority.size() && authority[close + 1] == ':') {
      port = authority.substr(close + 2);
    }
  } else {
    const size_t colon = authority.rfind(':');
    out->host.assign(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
    }
  }
  if (out->host.empty()) {
    return "missing host in url";
  }
  if (scheme.empty()) {
    return "missing scheme in url";
  }
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  out->scheme = scheme;
  if (scheme != "http" && scheme != "https") {
    return "unsupported scheme in url: Portico sends logs over http and https only";
  }
  out->port = scheme == "https" ? 443 : 80;
  if (!port.empty()) {
    uint32_t p = 0;
    for (char c : port) {
      if (!std::isdigit(static_cast<unsigned char>(c)) || p > 65535) {
        return "invalid port in url";
      }
      p = p * 10 + static_cast<uint32_t>(c - '0');
    }
    if (p == 0 || p > 65535) {
      return "invalid port in url";
    }
    out->port = static_cast<uint16_t>(p);
  }
  const std::string_view path = rest.substr(0, rest.find('?'));
  out->path.assign(path.empty() ? std::string_view("/") : path);
  return "";
}

}  // namespace portico::dp::plugins::logging
