#include "common/config/validate.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/config/entities.h"
#include "common/config/key_auth_table.h"
#include "common/config/regex.h"
#include "re2/re2.h"

namespace portico::config {
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

void checkTags(Errors& errors, const google::protobuf::RepeatedPtrField<std::string>& tags) {
  for (int i = 0; i < tags.size(); ++i) {
    errors.addIf(index("tags", i), checkTag(tags[i]));
  }
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

namespace {

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

namespace {

// key-auth keys come by the hundred thousand (one or more per API client), and the schema
// path (entity -> JSON -> processEntity) costs ~17 us each: 1M keys took 19 s. The same rules
// as the keyauth_credentials schema, with the same messages, checked on the proto.
void validateKeyAuthCredentials(const v1::Snapshot& snapshot,
                                const absl::flat_hash_set<std::string>& consumer_ids,
                                FieldErrors* out) {
  const char* kEntity = "keyauth_credentials";
  absl::flat_hash_set<std::string_view> ids;
  absl::flat_hash_set<std::string_view> keys;
  ids.reserve(static_cast<size_t>(snapshot.keyauth_credentials_size()));
  keys.reserve(static_cast<size_t>(snapshot.keyauth_credentials_size()));
  for (const v1::KeyAuthCredential& k : snapshot.keyauth_credentials()) {
    const std::string& id = k.id();
    if (id.empty()) {
      out->push_back({kEntity, id, "id", "required field missing"});
    } else if (!isUuid(id)) {
      out->push_back({kEntity, id, "id", "expected a valid UUID"});
    } else if (!ids.insert(id).second) {
      out->push_back({kEntity, id, "id", "duplicate id: " + id});
    }
    if (!k.has_consumer() || k.consumer().id().empty()) {
      out->push_back({kEntity, id, "consumer", "required field missing"});
    } else if (!isUuid(k.consumer().id())) {
      out->push_back({kEntity, id, "consumer.id", "expected a valid UUID"});
    } else if (!consumer_ids.contains(k.consumer().id())) {
      out->push_back({kEntity, id, "consumer.id",
                      "the foreign key '{id=\"" + k.consumer().id() +
                          "\"}' does not reference an existing 'consumers' entity."});
    }
    if (k.key().empty()) {
      out->push_back({kEntity, id, "key", "length must be at least 1"});
    } else if (k.key().size() > kMaxSecretLength) {
      out->push_back({kEntity, id, "key", checkMaxLength(k.key(), kMaxSecretLength)});
    } else if (!keys.insert(k.key()).second) {
      out->push_back({kEntity, id, "key", "duplicate value: {key=\"" + k.key() + "\"}"});
    }
    if (k.has_ttl() && (k.ttl() < 0 || k.ttl() > 100000000)) {
      out->push_back({kEntity, id, "ttl", "value should be between 0 and 100000000"});
    }
    for (int i = 0; i < k.tags_size(); ++i) {
      if (std::string why = checkTag(k.tags(i)); !why.empty()) {
        out->push_back({kEntity, id, "tags." + std::to_string(i + 1), why});
      }
    }
  }
}

// The same rules on credentials held as a KeyAuthTable (the DP's form). Ids and keys are
// unique by construction (the table reported duplicates among its errors()); rows kept
// serialized (tags, unusual values) are checked as the proto they are.
void validateKeyAuthTable(const KeyAuthTable& table,
                          const absl::flat_hash_set<std::string>& consumer_ids,
                          FieldErrors* out) {
  const char* kEntity = "keyauth_credentials";
  out->insert(out->end(), table.errors().begin(), table.errors().end());
  char consumer[36];
  v1::KeyAuthCredential k;
  for (size_t i = 0; i < table.size(); ++i) {
    const KeyAuthTable::Row& row = table.row(i);
    formatUuid(row.consumer, consumer);
    const std::string_view consumer_id(consumer, sizeof(consumer));
    if (!consumer_ids.contains(absl::string_view(consumer, sizeof(consumer)))) {
      out->push_back({kEntity, formatUuid(row.id), "consumer.id",
                      "the foreign key '{id=\"" + std::string(consumer_id) +
                          "\"}' does not reference an existing 'consumers' entity."});
    }
    const std::string_view key = table.key(row);
    if (key.empty()) {
      out->push_back({kEntity, formatUuid(row.id), "key", "length must be at least 1"});
    } else if (key.size() > kMaxSecretLength) {
      out->push_back({kEntity, formatUuid(row.id), "key", checkMaxLength(key, kMaxSecretLength)});
    }
    if (row.ttl != KeyAuthTable::kNoTtl && (row.ttl < 0 || row.ttl > 100000000)) {
      out->push_back({kEntity, formatUuid(row.id), "ttl", "value should be between 0 and 100000000"});
    }
    const std::vector<std::string> tags = table.tags(i);
    for (size_t t = 0; t < tags.size(); ++t) {
      if (std::string why = checkTag(tags[t]); !why.empty()) {
        out->push_back({kEntity, formatUuid(row.id), "tags." + std::to_string(t + 1), why});
      }
    }
  }
}

}  // namespace

FieldErrors validateSnapshot(const v1::Snapshot& snapshot, const KeyAuthTable* key_auth,
                             bool check_entities) {
  FieldErrors out;
  auto append = [&out](FieldErrors&& more) {
    out.insert(out.end(), std::make_move_iterator(more.begin()),
               std::make_move_iterator(more.end()));
  };
  // Hash sets of views into `snapshot` (no copies): at 10k services + 10k routes + 10k
  // consumers, ordered sets of copied strings were a third of validateSnapshot's time.
  using ViewSet = absl::flat_hash_set<std::string_view>;
  ViewSet service_ids, service_names, route_ids, route_names;
  service_ids.reserve(static_cast<size_t>(snapshot.services_size()));
  route_ids.reserve(static_cast<size_t>(snapshot.routes_size()));
  for (const auto& s : snapshot.services()) {
    if (check_entities) {
      append(validateService(s));
    }
    if (s.id().empty()) {
      out.push_back({"services", s.id(), "id", "required field missing"});
    } else if (!service_ids.insert(s.id()).second) {
      out.push_back({"services", s.id(), "id", "duplicate id: " + s.id()});
    }
    if (s.has_name() && !service_names.insert(s.name()).second) {
      out.push_back({"services", s.id(), "name", "duplicate name: " + s.name()});
    }
  }
  for (const auto& r : snapshot.routes()) {
    if (check_entities) {
      append(validateRoute(r));
    }
    if (r.id().empty()) {
      out.push_back({"routes", r.id(), "id", "required field missing"});
    } else if (!route_ids.insert(r.id()).second) {
      out.push_back({"routes", r.id(), "id", "duplicate id: " + r.id()});
    }
    if (r.has_name() && !route_names.insert(r.name()).second) {
      out.push_back({"routes", r.id(), "name", "duplicate name: " + r.name()});
    }
    if (r.has_service_id() && !service_ids.contains(r.service_id())) {
      out.push_back({"routes", r.id(), "service.id",
                     "the foreign key '{id=\"" + r.service_id() +
                         "\"}' does not reference an existing 'services' entity."});
    }
  }
  // The schema-driven entities (Snapshot fields named after them, in dependency order):
  // the same processing the CP's Admin API ran on write, plus ids, unique keys and foreign
  // keys across the snapshot.
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> ids;
  auto idExists = [&](const std::string& entity, const std::string& id) {
    if (entity == "services") {
      return service_ids.contains(id);
    }
    if (entity == "routes") {
      return route_ids.contains(id);
    }
    auto it = ids.find(entity);
    return it != ids.end() && it->second.contains(id);
  };
  const google::protobuf::Descriptor* d = snapshot.GetDescriptor();
  const google::protobuf::Reflection* refl = snapshot.GetReflection();
  std::vector<std::pair<const EntitySchema*, Json>> entities;
  for (const EntitySchema* schema : allEntitySchemas()) {
    if (schema->name == "services" || schema->name == "routes" ||
        schema->name == "keyauth_credentials") {
      continue;  // services and routes above; key-auth keys below, on the proto directly
    }
    const google::protobuf::FieldDescriptor* f = d->FindFieldByName(schema->name);
    if (f == nullptr) {
      continue;
    }
    const int n = refl->FieldSize(snapshot, f);
    absl::flat_hash_set<std::string>& schema_ids = ids[schema->name];
    schema_ids.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      entities.emplace_back(schema, protoToJson(refl->GetRepeatedMessage(snapshot, f, i)));
      const std::string id = entities.back().second.value("id", "");
      if (!id.empty()) {
        schema_ids.insert(id);
      }
    }
  }
  struct PerSchema {
    std::vector<UniqueKey> unique_keys;
    std::vector<const Field*> foreign;
    absl::flat_hash_set<std::string> seen;
    absl::flat_hash_set<std::string> unique_values;
  };
  absl::flat_hash_map<const EntitySchema*, PerSchema> per_schema;
  for (const auto& [schema, entity] : entities) {
    auto [it, fresh] = per_schema.try_emplace(schema);
    PerSchema& ps = it->second;
    if (fresh) {
      ps.unique_keys = schema->allUniqueKeys();
      ps.foreign = schema->foreignFields();
    }
    {
      const std::string id = entity.value("id", "");
      if (check_entities) {
        Json normalized;
        for (auto& e : processEntityJson(schema->name, entity, &normalized)) {
          e.entity_type = schema->name;
          e.entity_id = id;
          out.push_back(std::move(e));
        }
      }
      if (id.empty()) {
        out.push_back({schema->name, id, "id", "required field missing"});
      } else if (!ps.seen.insert(id).second) {
        out.push_back({schema->name, id, "id", "duplicate id: " + id});
      }
      for (const UniqueKey& key : ps.unique_keys) {
        bool all_null = true;
        for (const auto& name : key.fields) {
          auto v = entity.find(name);
          all_null = all_null && (v == entity.end() || v->is_null());
        }
        if (all_null) {
          continue;
        }
        Json values = Json::object();
        for (const auto& name : key.fields) {
          values[name] = entity.value(name, Json());
        }
        for (const auto& name : key.scope) {
          values[name] = entity.value(name, Json());
        }
        if (!ps.unique_values.insert(values.dump()).second) {
          out.push_back({schema->name, id, key.fields.front(),
                         "duplicate value: " + luaTable(values)});
        }
      }
      for (const Field* fk : ps.foreign) {
        const Json& ref = entity.value(fk->name, Json());
        if (!ref.is_object() || !ref.contains("id")) {
          continue;
        }
        const std::string ref_id = ref["id"].get<std::string>();
        if (!idExists(fk->reference, ref_id)) {
          out.push_back({schema->name, id, fk->name + ".id",
                         "the foreign key '{id=\"" + ref_id +
                             "\"}' does not reference an existing '" + fk->reference +
                             "' entity."});
        }
      }
    }
  }
  validateKeyAuthCredentials(snapshot, ids["consumers"], &out);
  if (key_auth != nullptr) {
    validateKeyAuthTable(*key_auth, ids["consumers"], &out);
  }
  return out;
}

}  // namespace portico::config
