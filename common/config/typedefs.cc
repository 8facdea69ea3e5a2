#include "common/config/typedefs.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/config/regex.h"
#include "re2/re2.h"

namespace portico::config {
namespace {

// Not std::isxdigit: a locale lookup per call, and vitals ingest checks ~7M ids per 10 s at
// fleet scale (perf: isxdigit was ~4% of the control plane's cluster thread).
bool isHexDigit(char c) {
  const char lower = static_cast<char>(c | 0x20);
  return (c >= '0' && c <= '9') || (lower >= 'a' && lower <= 'f');
}
bool isAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

bool validUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int n = 0;
    if (c < 0x80) {
      n = 0;
    } else if ((c & 0xE0) == 0xC0 && c >= 0xC2) {
      n = 1;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
    } else if ((c & 0xF8) == 0xF0 && c <= 0xF4) {
      n = 3;
    } else {
      return false;
    }
    if (n > 0 && i + n >= s.size()) {
      return false;
    }
    for (int k = 1; k <= n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) {
        return false;
      }
    }
    i += n + 1;
  }
  return true;
}

// Kong's utils.check_hostname on a name without port: [A-Za-z0-9-._]+, no label ending in
// '-', no empty label except a trailing one (FQDN).
bool validHostname(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  for (char c : name) {
    if (!isAlnum(c) && c != '-' && c != '.' && c != '_') {
      return false;
    }
  }
  size_t start = 0;
  while (true) {
    const size_t dot = name.find('.', start);
    const std::string_view label =
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    const bool last = dot == std::string_view::npos;
    if (label.empty() && !last) {
      return false;
    }
    if (!label.empty() && label.back() == '-') {
      return false;
    }
    if (last) {
      break;
    }
    start = dot + 1;
  }
  return true;
}

bool validIpv4(std::string_view s) {
  int parts = 0;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = i;
    int value = 0;
    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) {
      value = value * 10 + (s[j] - '0');
      if (value > 255 || j - i > 2) {
        return false;
      }
      ++j;
    }
    if (j == i) {
      return false;
    }
    ++parts;
    if (j == s.size()) {
      break;
    }
    if (s[j] != '.') {
      return false;
    }
    i = j + 1;
  }
  return parts == 4;
}

bool looksLikeIpv4(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
  });
}

bool validIpv6(std::string_view s) {
  if (s.empty() || s.size() > 39) {
    return false;
  }
  int groups = 0;
  bool double_colon = false;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == ':') {
      if (i + 1 < s.size() && s[i + 1] == ':') {
        if (double_colon) {
          return false;
        }
        double_colon = true;
        i += 2;
        continue;
      }
      if (i == 0) {
        return false;
      }
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && isHexDigit(s[j])) {
      ++j;
    }
    if (j == i || j - i > 4) {
      return false;
    }
    ++groups;
    i = j;
  }
  return double_colon ? groups < 8 : groups == 8;
}

enum class HostKind { kName, kIpv4, kIpv6, kInvalid };
struct ParsedHost {
  HostKind kind = HostKind::kInvalid;
  bool has_port = false;
  bool bad_port = false;
};

// Kong's utils.normalize_ip: a name or IP with an optional ":port".
ParsedHost parseHost(std::string_view in) {
  ParsedHost out;
  std::string_view host = in;
  auto takePort = [&](std::string_view port) {
    out.has_port = true;
    if (port.empty() || port.size() > 6 ||
        !std::all_of(port.begin(), port.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
      out.bad_port = true;
      return;
    }
    if (std::stoi(std::string(port)) > 65535) {
      out.bad_port = true;
    }
  };
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string_view::npos) {
      return out;
    }
    const std::string_view rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return out;
      }
      takePort(rest.substr(1));
    }
    out.kind = validIpv6(host.substr(1, close - 1)) ? HostKind::kIpv6 : HostKind::kInvalid;
    return out;
  }
  if (std::count(host.begin(), host.end(), ':') > 1) {
    out.kind = validIpv6(host) ? HostKind::kIpv6 : HostKind::kInvalid;
    return out;
  }
  const size_t colon = host.find(':');
  if (colon != std::string_view::npos) {
    takePort(host.substr(colon + 1));
    host = host.substr(0, colon);
  }
  if (looksLikeIpv4(host)) {
    out.kind = validIpv4(host) ? HostKind::kIpv4 : HostKind::kInvalid;
  } else {
    out.kind = validHostname(host) ? HostKind::kName : HostKind::kInvalid;
  }
  return out;
}

}  // namespace

std::string checkSni(const std::string& value) {
  if (value.empty()) {
    return "length must be at least 1";
  }
  if (std::string too_long = checkHostLength(value, false); !too_long.empty()) {
    return too_long;
  }
  std::string host = value;
  const size_t star = host.find('*');
  if (star != std::string::npos) {
    std::string reason = checkWildcardHost(value);
    if (!reason.empty()) {
      return reason;
    }
    host.replace(star, 1, "wildcard");
  }
  const ParsedHost parsed = parseHost(host);
  if (parsed.kind == HostKind::kInvalid) {
    return "invalid value: " + value;
  }
  if (parsed.kind != HostKind::kName) {
    return "must not be an IP";
  }
  if (parsed.has_port) {
    return "must not have a port";
  }
  return "";
}

// 8-4-4-4-12 hex digits. Hand-written (was an RE2 FullMatch): it runs for every entity id of
// every snapshot a DP applies, 30k times for a 10k/10k/10k config.
bool isUuid(const std::string& v) {
  if (v.size() != 36) {
    return false;
  }
  for (size_t i = 0; i < v.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (v[i] != '-') {
        return false;
      }
    } else if (!isHexDigit(v[i])) {
      return false;
    }
  }
  return true;
}

std::string checkMaxLength(std::string_view value, size_t max) {
  return value.size() > max ? "length must be at most " + std::to_string(max) : "";
}

std::string checkHostLength(std::string_view value, bool optional_port) {
  constexpr size_t kPortSuffix = 6;  // ":65535"
  if (!optional_port || value.size() > kMaxHostLength + kPortSuffix) {
    return checkMaxLength(value, kMaxHostLength);
  }
  std::string_view name = value;
  const size_t colon = name.rfind(':');
  // "name:port" or "1.2.3.4:port"; an IPv6 address (several colons) is short anyway.
  if (colon != std::string_view::npos && name.find(':') == colon) {
    name = name.substr(0, colon);
  }
  return checkMaxLength(name, kMaxHostLength);
}

std::string checkUuid(const std::string& value) {
  return isUuid(value) ? "" : "expected a valid UUID";
}

std::string checkUtf8Name(const std::string& value) {
  if (value.empty()) {
    return "length must be at least 1";
  }
  if (std::string too_long = checkMaxLength(value, kMaxNameLength); !too_long.empty()) {
    return too_long;
  }
  if (!validUtf8(value)) {
    return "invalid utf-8 character sequence detected";
  }
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80 || isAlnum(c) || c == '.' || c == '-' || c == '_' || c == '~') {
      continue;
    }
    return "invalid value '" + value +
           "': the only accepted ascii characters are alphanumerics or ., -, _, and ~";
  }
  return "";
}

std::string checkHost(const std::string& value) {
  if (value.empty()) {
    return "length must be at least 1";
  }
  if (std::string too_long = checkHostLength(value, false); !too_long.empty()) {
    return too_long;
  }
  const ParsedHost parsed = parseHost(value);
  if (parsed.kind == HostKind::kInvalid && !parsed.bad_port) {
    return "invalid value: " + value;
  }
  if (parsed.has_port) {
    return "must not have a port";
  }
  return "";
}

std::string classifyHost(const std::string& value, bool* has_port) {
  const ParsedHost parsed = parseHost(value);
  if (has_port != nullptr) {
    *has_port = parsed.has_port;
  }
  if (parsed.bad_port) {
    return "";
  }
  switch (parsed.kind) {
    case HostKind::kName:
      return "name";
    case HostKind::kIpv4:
      return "ipv4";
    case HostKind::kIpv6:
      return "ipv6";
    case HostKind::kInvalid:
      break;
  }
  return "";
}

namespace {

// typedefs.path's custom validator; `code` tells Kong's two failure kinds apart.
enum class PathError { kNone, kRfc3986, kPercent };
PathError rawPathCheck(const std::string& path, std::string* reason) {
  bool rfc_ok = !path.empty() && path[0] == '/';
  for (char c : path) {
    if (!rfc_ok) {
      break;
    }
    if (isAlnum(c) || std::string_view(".-_~/%:@!$&'()*+,;=").find(c) != std::string_view::npos) {
      continue;
    }
    rfc_ok = false;
  }
  if (!rfc_ok) {
    *reason = "invalid path: '" + path +
              "' (characters outside of the reserved list of RFC 3986 found)";
    return PathError::kRfc3986;
  }
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '%') {
      continue;
    }
    if (i + 2 < path.size() && isHexDigit(path[i + 1]) && isHexDigit(path[i + 2])) {
      i += 2;
      continue;
    }
    *reason = "invalid url-encoded value: '" + path.substr(i, 3) + "'";
    return PathError::kPercent;
  }
  return PathError::kNone;
}

}  // namespace

std::string checkServicePath(const std::string& value) {
  if (value.empty()) {
    return "length must be at least 1";
  }
  if (std::string too_long = checkMaxLength(value, kMaxPathLength); !too_long.empty()) {
    return too_long;
  }
  if (value.find("//") != std::string::npos) {
    return "must not have empty segments";
  }
  if (value[0] != '/') {
    return "should start with: /";
  }
  std::string reason;
  rawPathCheck(value, &reason);
  return reason;
}

std::string normalizePath(const std::string& path) {
  // 1. Decode %XX of unreserved characters, upper-case the hex of the others.
  std::string decoded;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' && i + 2 < path.size() && isHexDigit(path[i + 1]) &&
        isHexDigit(path[i + 2])) {
      const int v = std::stoi(path.substr(i + 1, 2), nullptr, 16);
      const char c = static_cast<char>(v);
      if (isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
        decoded.push_back(c);
      } else {
        decoded.push_back('%');
        decoded.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(path[i + 1]))));
        decoded.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(path[i + 2]))));
      }
      i += 2;
    } else {
      decoded.push_back(path[i]);
    }
  }
  // 2. Remove dot segments (RFC 3986 5.2.4) and merge repeated slashes.
  std::vector<std::string> segments;
  size_t start = 1;
  const bool trailing_slash = decoded.size() > 1 && decoded.back() == '/';
  while (start <= decoded.size()) {
    size_t slash = decoded.find('/', start);
    if (slash == std::string::npos) {
      slash = decoded.size();
    }
    const std::string seg = decoded.substr(start, slash - start);
    if (seg == "..") {
      if (!segments.empty()) {
        segments.pop_back();
      }
    } else if (!seg.empty() && seg != ".") {
      segments.push_back(seg);
    }
    start = slash + 1;
  }
  std::string out;
  for (const auto& s : segments) {
    out += "/" + s;
  }
  const bool dir_like = trailing_slash || decoded.ends_with("/.") || decoded.ends_with("/..");
  if (out.empty() || dir_like) {
    out += "/";
  }
  return out;
}

std::string checkRouterPath(const std::string& value) {
  if (value.empty()) {
    return "length must be at least 1";
  }
  if (std::string too_long = checkMaxLength(value, kMaxPathLength); !too_long.empty()) {
    return too_long;
  }
  if (value.find("//") != std::string::npos) {
    return "must not have empty segments";
  }
  if (!(value.starts_with("/") || value.starts_with("~/"))) {
    return "should start with: / (fixed path) or ~/ (regex path)";
  }
  std::string reason;
  if (rawPathCheck(value, &reason) == PathError::kPercent) {
    return reason;
  }
  if (value[0] != '~') {
    const std::string normalized = normalizePath(value);
    if (normalized != value) {
      return "non-normalized path, consider use '" + normalized + "' instead";
    }
    return "";
  }
  const std::string re = value.substr(1);
  RE2::Options options;
  options.set_log_errors(false);
  // The router's translation (Kong's "(?<name>" groups), so both accept the same patterns.
  const RE2 compiled(translateRouteRegex(re), options);
  if (!compiled.ok()) {
    // Kong's text names PCRE; we keep the prefix so clients matching on it keep working.
    return "invalid regex: '" + re + "' (PCRE returned: " + compiled.error() + ")";
  }
  return "";
}

std::string checkWildcardHost(const std::string& value) {
  if (value.empty()) {
    return "length must be at least 1";
  }
  if (std::string too_long = checkHostLength(value, true); !too_long.empty()) {
    return too_long;
  }
  std::string host = value;
  const size_t star = host.find('*');
  if (star != std::string::npos) {
    const size_t colon = host.find(':');
    const std::string name = colon == std::string::npos ? host : host.substr(0, colon);
    const bool leftmost = star == 0 && name.size() > 1 && name[1] == '.';
    const bool rightmost = star == name.size() - 1 && name.size() > 1 && name[star - 1] == '.';
    if (!leftmost && !rightmost) {
      return "invalid wildcard: must be placed at leftmost or rightmost label";
    }
    if (std::count(host.begin(), host.end(), '*') > 1) {
      return "invalid wildcard: must have at most one wildcard";
    }
    host.replace(star, 1, "wildcard");
  }
  const ParsedHost parsed = parseHost(host);
  if (parsed.bad_port) {
    return "invalid port number";
  }
  if (parsed.kind == HostKind::kInvalid) {
    return "invalid hostname: " + value;
  }
  return "";
}

std::string checkTag(const std::string& value) {
  if (value.empty()) {
    return "length must be at least 1";
  }
  if (std::string too_long = checkMaxLength(value, kMaxTagLength); !too_long.empty()) {
    return too_long;
  }
  bool ok = validUtf8(value);
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && (u < 0x20 || u > 0x7E || c == ',' || c == '/')) {
      ok = false;
    }
  }
  if (!ok) {
    return "invalid tag '" + value +
           "': expected printable ascii (except `,` and `/`) or valid utf-8 sequences";
  }
  return "";
}

bool isValidUtf8(std::string_view s) { return validUtf8(s); }

// ---- Field builders (kong/db/schema/typedefs.lua) -------------------------------------------

Field idField() {
  Field f = Field::string("id");
  f.uuid = true;
  f.auto_value = true;
  return f;
}
Field timestampField(const std::string& name, bool is_float) {
  Field f = is_float ? Field::number(name) : Field::integer(name);
  f.auto_value = true;
  return f;
}
Field tagsField() {
  return Field::set("tags", Field::string("tag").lenMax(kMaxTagLength).validator([](Json& v) {
    return checkTag(v.get<std::string>());
  }));
}
Field utf8NameField(const std::string& name) {
  return Field::string(name).lenMax(kMaxNameLength).validator([](Json& v) {
    return checkUtf8Name(v.get<std::string>());
  });
}
Field consumerField() { return Field::foreign("consumer", "consumers").req().cascade(); }

std::string headerNameCheck(const std::string& name) {
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) {
      return "bad header name '" + name + "', allowed characters are A-Z, a-z, 0-9, '_', and '-'";
    }
  }
  return "";
}
bool isHeaderName(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

bool splitNameValue(std::string_view entry, std::string_view* name, std::string_view* value) {
  const size_t colon = entry.find(':');
  *name = entry.substr(0, colon);
  if (name->empty()) {
    return false;
  }
  if (colon == std::string_view::npos) {
    *value = {};
    return true;
  }
  size_t v = colon;
  while (v < entry.size() && entry[v] == ':') ++v;
  *value = entry.substr(v);
  return true;
}

Field headerNameField(const std::string& name) {
  return Field::string(name).validator([](Json& v) { return headerNameCheck(v.get<std::string>()); });
}

std::vector<Json> jsonList(std::initializer_list<const char*> items) {
  std::vector<Json> out;
  for (const char* i : items) {
    out.emplace_back(i);
  }
  return out;
}

const std::vector<Json>& allProtocols() {
  static const auto* const kProtocols = new std::vector<Json>(
      jsonList({"grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp"}));
  return *kProtocols;
}

const std::vector<Json>& httpProtocols() {
  static const auto* const kProtocols =
      new std::vector<Json>(jsonList({"grpc", "grpcs", "http", "https"}));
  return *kProtocols;
}

EntitySchema credentialSchema(const std::string& name, const std::string& path,
                        const std::string& endpoint_key, std::vector<Field> fields) {
  EntitySchema s;
  s.name = name;
  s.admin_path = path;
  s.endpoint_key = endpoint_key;
  s.fields = {idField(), timestampField("created_at"), consumerField()};
  for (auto& f : fields) {
    s.fields.push_back(std::move(f));
  }
  s.fields.push_back(tagsField());
  return s;
}

}  // namespace portico::config
