#include "control_plane/admin_api/admin_api.h"

#include <unistd.h>

#include <cstdio>
#include <optional>
#include <random>
#include <vector>

#include "common/config/kong_json.h"
#include "common/config/validate.h"
#include "common/logging.h"

namespace portico::cp {
namespace {

namespace v1 = config::v1;
using config::Json;

// Kong's error codes (kong/db/errors.lua) and their HTTP status.
enum KongError {
  kPrimaryKeyViolation = 3,
  kSchemaViolation = 2,
  kForeignKeyViolation = 4,
  kUniqueViolation = 5,
  kInvalidOffset = 7,
  kInvalidSize = 9,
  kForeignKeysUnresolved = 13,
};

// Fixed client-facing messages (rule 6): never raw text from the database layer.
constexpr char kNotFound[] = "Not found";
constexpr char kMethodNotAllowed[] = "Method not allowed";
constexpr char kCannotParseJson[] = "Cannot parse JSON body";
constexpr char kUnexpected[] = "An unexpected error occurred";
constexpr char kUnavailable[] = "The database is unavailable";
constexpr char kDefaultGroup[] = "default";
constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;

ApiResponse json(int status, const Json& body) { return {status, body.dump()}; }
ApiResponse message(int status, const std::string& text) {
  return json(status, Json{{"message", text}});
}

ApiResponse kongError(int code, const std::string& name, const std::string& msg,
                      std::optional<Json> fields = std::nullopt) {
  Json body{{"code", code}, {"name", name}, {"message", msg}};
  if (fields) {
    body["fields"] = *fields;
  }
  const int status = code == kUniqueViolation ? 409 : code == 6 ? 404 : code == 8 ? 500 : 400;
  return json(status, body);
}

// Any status the handlers do not turn into a Kong-specific error.
ApiResponse statusResponse(const absl::Status& st) {
  const int http = toHttpStatus(st.code());
  if (http == 404) {
    return message(404, kNotFound);
  }
  if (http == 503) {
    LOG_WARN("admin", "%s", st.message());
    return message(503, kUnavailable);
  }
  LOG_ERROR("admin", "unexpected error: %s", st.ToString());
  return message(500, kUnexpected);
}

std::string newUuid() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const uint64_t a = rng(), b = rng();
  unsigned char bytes[16];
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<unsigned char>(a >> (8 * i));
    bytes[8 + i] = static_cast<unsigned char>(b >> (8 * i));
  }
  bytes[6] = (bytes[6] & 0x0F) | 0x40;  // version 4
  bytes[8] = (bytes[8] & 0x3F) | 0x80;  // RFC 4122 variant
  char out[37];
  std::snprintf(out, sizeof(out),
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", bytes[0],
                bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8],
                bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]);
  return out;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string urlDecode(std::string_view in, bool plus_is_space) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && hexValue(in[i + 1]) >= 0 &&
        hexValue(in[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hexValue(in[i + 1]) * 16 + hexValue(in[i + 2])));
      i += 2;
    } else if (plus_is_space && in[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

// As ngx.escape_uri: everything but unreserved characters is %XX-escaped.
std::string uriEscape(std::string_view in) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (char c : in) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64Encode(std::string_view in) {
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += {kB64[v >> 18], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63], kB64[v & 63]};
  }
  if (i + 1 == in.size()) {
    const uint32_t v = static_cast<unsigned char>(in[i]) << 16;
    out += {kB64[v >> 18], kB64[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const uint32_t v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {kB64[v >> 18], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63], '='};
  }
  return out;
}

std::optional<std::string> base64Decode(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) {
    return std::nullopt;
  }
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '=') {
      if (i + 2 < in.size()) {
        return std::nullopt;
      }
      break;
    }
    const char* p = std::strchr(kB64, in[i]);
    if (p == nullptr || *p == '\0') {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<uint32_t>(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

// Kong-style opaque offset: base64 of a JSON array holding the last primary key.
std::string encodeOffset(const std::string& last_id) {
  return base64Encode(Json::array({last_id}).dump());
}

struct ParsedTarget {
  std::vector<std::string> segments;  // URL-decoded path segments
  std::map<std::string, std::string> query;
};

ParsedTarget parseTarget(const std::string& target) {
  ParsedTarget out;
  const size_t q = target.find('?');
  const std::string path = target.substr(0, q);
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) {
      slash = path.size();
    }
    if (slash > start) {
      out.segments.push_back(urlDecode(std::string_view(path).substr(start, slash - start),
                                       false));
    }
    start = slash + 1;
  }
  if (q != std::string::npos) {
    const std::string qs = target.substr(q + 1);
    size_t pos = 0;
    while (pos <= qs.size()) {
      size_t amp = qs.find('&', pos);
      if (amp == std::string::npos) {
        amp = qs.size();
      }
      const std::string pair = qs.substr(pos, amp - pos);
      if (!pair.empty()) {
        const size_t eq = pair.find('=');
        out.query[urlDecode(pair.substr(0, eq), true)] =
            eq == std::string::npos ? "" : urlDecode(pair.substr(eq + 1), true);
      }
      pos = amp + 1;
    }
  }
  return out;
}

struct PageRequest {
  int size = kDefaultPageSize;
  bool size_given = false;
  std::string after_id;
};

// Parses ?size= and ?offset= as Kong does; an error response if they are invalid.
std::optional<ApiResponse> parsePage(const ParsedTarget& t, PageRequest* page) {
  if (auto it = t.query.find("size"); it != t.query.end()) {
    page->size_given = true;
    char* end = nullptr;
    const double v = std::strtod(it->second.c_str(), &end);
    if (it->second.empty() || end == nullptr || *end != '\0') {
      return kongError(kInvalidSize, "invalid size", "size must be a number");
    }
    if (v < 1 || v > kMaxPageSize || v != static_cast<int>(v)) {
      return kongError(kInvalidSize, "invalid size",
                       "size must be an integer between 1 and " + std::to_string(kMaxPageSize));
    }
    page->size = static_cast<int>(v);
  }
  if (auto it = t.query.find("offset"); it != t.query.end()) {
    const std::optional<std::string> raw = base64Decode(it->second);
    if (!raw) {
      return kongError(kInvalidOffset, "invalid offset",
                       "'" + it->second + "' is not a valid offset: bad base64 encoding");
    }
    const Json parsed = Json::parse(*raw, nullptr, false);
    if (!parsed.is_array() || parsed.size() != 1 || !parsed[0].is_string() ||
        !config::isUuid(parsed[0].get<std::string>())) {
      return kongError(kInvalidOffset, "invalid offset",
                       "'" + it->second + "' is not a valid offset: bad json encoding");
    }
    page->after_id = parsed[0].get<std::string>();
  }
  return std::nullopt;
}

template <class T, class Encode>
ApiResponse pageResponse(const Page<T>& page, const std::string& base_path,
                         const PageRequest& req, bool nested, Encode encode) {
  Json data = Json::array();
  for (const auto& item : page.items) {
    data.push_back(encode(item));
  }
  Json body{{"data", std::move(data)}};
  if (page.next_after_id) {
    const std::string offset = encodeOffset(*page.next_after_id);
    body["offset"] = offset;
    std::string next = base_path + "?offset=" + uriEscape(offset);
    if (req.size_given && !nested) {
      next += "&size=" + std::to_string(req.size);
    }
    body["next"] = next;
  } else {
    body["next"] = nullptr;
  }
  return json(200, body);
}

// The body as JSON; an empty body is an empty object.
std::optional<Json> parseBody(const ApiRequest& req) {
  if (req.body.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Json::object();
  }
  Json j = Json::parse(req.body, nullptr, false);
  if (j.is_discarded()) {
    return std::nullopt;
  }
  return j;
}

std::string luaQuote(const std::string& s) { return "\"" + s + "\""; }

ApiResponse uniqueViolation(const std::string& column, const std::string& value) {
  return kongError(kUniqueViolation, "unique constraint violation",
                   "UNIQUE violation detected on '{" + column + "=" + luaQuote(value) + "}'",
                   Json{{column, value}});
}

ApiResponse primaryKeyViolation(const std::string& id) {
  return kongError(kPrimaryKeyViolation, "primary key violation",
                   "primary key violation on key '{id=" + luaQuote(id) + "}'", Json{{"id", id}});
}

ApiResponse serviceFkViolation(const std::string& service_id) {
  return kongError(kForeignKeyViolation, "foreign key violation",
                   "the foreign key '{id=" + luaQuote(service_id) +
                       "}' does not reference an existing 'services' entity.",
                   Json{{"service", {{"id", service_id}}}});
}

ApiResponse serviceUnresolved(const std::string& name) {
  const std::string reason = "the foreign key cannot be resolved with '{name=" + luaQuote(name) +
                             "}' for an existing 'services' entity";
  return kongError(kForeignKeysUnresolved, "foreign keys unresolved",
                   "foreign key unresolved (service.name: " + reason + ")",
                   Json{{"service", {{"name", reason}}}});
}

}  // namespace

int toHttpStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return 503;
    case absl::StatusCode::kUnimplemented:
      return 501;
    default:
      return 500;
  }
}

namespace {

// The handlers for one request; `group` is the config group the path addresses.
class Handler {
 public:
  Handler(PgConfigStore& store, std::string group) : store_(store), group_(std::move(group)) {}

  // ---- services ------------------------------------------------------------------------
  ApiResponse listServices(const ParsedTarget& t) {
    PageRequest page;
    if (auto err = parsePage(t, &page)) {
      return *err;
    }
    auto result = store_.listServices(group_, page.after_id, page.size);
    if (!result.ok()) {
      return statusResponse(result.status());
    }
    return pageResponse(*result, "/services", page, false, config::encodeService);
  }

  ApiResponse getService(const std::string& key) {
    auto s = store_.getService(group_, key);
    if (!s.ok()) {
      return statusResponse(s.status());
    }
    return json(200, config::encodeService(*s));
  }

  // POST (create), PUT (upsert by id or name) and PATCH (merge) share decoding and writing.
  ApiResponse writeService(const std::string& method, const std::string& key, const Json& body) {
    Json input = body;
    std::optional<v1::Service> existing;
    if (!key.empty()) {
      auto found = store_.getService(group_, key);
      if (found.ok()) {
        existing = *found;
      } else if (!absl::IsNotFound(found.status())) {
        return statusResponse(found.status());
      } else if (method == "PATCH") {
        return message(404, kNotFound);
      }
    }
    if (method == "PATCH") {
      input = config::mergePatch(config::encodeService(*existing), body, true);
    } else if (method == "PUT" && input.is_object()) {
      input.erase("id");
      input.erase("created_at");
      if (!config::isUuid(key)) {
        input["name"] = key;  // the endpoint key in the URL names the entity
      }
    }
    v1::Service service;
    config::FieldErrors errors = config::decodeService(input, &service);
    if (!errors.empty()) {
      return json(400, config::schemaViolationBody(errors));
    }
    if (existing) {
      service.set_id(existing->id());
      service.set_created_at(existing->created_at());
    } else if (method == "PUT" && config::isUuid(key)) {
      service.set_id(key);
    } else if (service.id().empty()) {
      service.set_id(newUuid());
    }
    absl::StatusOr<Written<v1::Service>> written =
        method == "POST"  ? store_.createService(group_, service)
        : method == "PUT" ? store_.upsertService(group_, service)
                          : store_.updateService(group_, service);
    if (!written.ok()) {
      if (absl::IsAlreadyExists(written.status())) {
        return written.status().message() == "name" ? uniqueViolation("name", service.name())
                                                    : primaryKeyViolation(service.id());
      }
      return statusResponse(written.status());
    }
    return json(method == "POST" ? 201 : 200, config::encodeService(written->entity));
  }

  ApiResponse deleteService(const std::string& key) {
    std::string id = key;
    if (!config::isUuid(key)) {
      auto found = store_.getService(group_, key);
      if (absl::IsNotFound(found.status())) {
        return {204, ""};
      }
      if (!found.ok()) {
        return statusResponse(found.status());
      }
      id = found->id();
    }
    auto deleted = store_.deleteService(group_, id);
    if (absl::IsFailedPrecondition(deleted.status())) {
      return kongError(kForeignKeyViolation, "foreign key violation",
                       "an existing 'routes' entity references this 'services' entity",
                       Json{{"@referenced_by", "routes"}});
    }
    if (!deleted.ok()) {
      return statusResponse(deleted.status());
    }
    return {204, ""};
  }

  // ---- routes --------------------------------------------------------------------------
  // `service_key` set: /services/{service_key}/routes (the service must exist).
  ApiResponse listRoutes(const ParsedTarget& t, const std::string& service_key) {
    PageRequest page;
    if (auto err = parsePage(t, &page)) {
      return *err;
    }
    std::string service_id;
    std::string base = "/routes";
    if (!service_key.empty()) {
      auto s = store_.getService(group_, service_key);
      if (!s.ok()) {
        return statusResponse(s.status());
      }
      service_id = s->id();
      base = "/services/" + uriEscape(service_key) + "/routes";
    }
    auto result = store_.listRoutes(group_, service_id, page.after_id, page.size);
    if (!result.ok()) {
      return statusResponse(result.status());
    }
    return pageResponse(*result, base, page, !service_key.empty(), config::encodeRoute);
  }

  ApiResponse getRoute(const std::string& key) {
    auto r = store_.getRoute(group_, key);
    if (!r.ok()) {
      return statusResponse(r.status());
    }
    return json(200, config::encodeRoute(*r));
  }

  ApiResponse getRouteService(const std::string& key) {
    auto r = store_.getRoute(group_, key);
    if (!r.ok()) {
      return statusResponse(r.status());
    }
    if (!r->has_service_id()) {
      return message(404, kNotFound);
    }
    return getService(r->service_id());
  }

  ApiResponse writeRoute(const std::string& method, const std::string& key, Json body,
                         const std::string& parent_service_key) {
    if (!parent_service_key.empty()) {
      auto parent = store_.getService(group_, parent_service_key);
      if (!parent.ok()) {
        return statusResponse(parent.status());
      }
      if (body.is_object()) {
        body["service"] = Json{{"id", parent->id()}};
      }
    }
    Json input = body;
    std::optional<v1::Route> existing;
    if (!key.empty()) {
      auto found = store_.getRoute(group_, key);
      if (found.ok()) {
        existing = *found;
      } else if (!absl::IsNotFound(found.status())) {
        return statusResponse(found.status());
      } else if (method == "PATCH") {
        return message(404, kNotFound);
      }
    }
    if (method == "PATCH") {
      input = config::mergePatch(config::encodeRoute(*existing), body, false);
    } else if (method == "PUT" && input.is_object()) {
      input.erase("id");
      input.erase("created_at");
      if (!config::isUuid(key)) {
        input["name"] = key;
      }
    }
    v1::Route route;
    std::optional<std::string> service_name;
    config::FieldErrors errors = config::decodeRoute(input, &route, &service_name);
    if (!errors.empty()) {
      return json(400, config::schemaViolationBody(errors));
    }
    if (service_name) {
      auto s = store_.getService(group_, *service_name);
      if (absl::IsNotFound(s.status())) {
        return serviceUnresolved(*service_name);
      }
      if (!s.ok()) {
        return statusResponse(s.status());
      }
      route.set_service_id(s->id());
    }
    if (existing) {
      route.set_id(existing->id());
      route.set_created_at(existing->created_at());
    } else if (method == "PUT" && config::isUuid(key)) {
      route.set_id(key);
    } else if (route.id().empty()) {
      route.set_id(newUuid());
    }
    absl::StatusOr<Written<v1::Route>> written =
        method == "POST"  ? store_.createRoute(group_, route)
        : method == "PUT" ? store_.upsertRoute(group_, route)
                          : store_.updateRoute(group_, route);
    if (!written.ok()) {
      if (absl::IsAlreadyExists(written.status())) {
        return written.status().message() == "name" ? uniqueViolation("name", route.name())
                                                    : primaryKeyViolation(route.id());
      }
      if (absl::IsFailedPrecondition(written.status())) {
        return serviceFkViolation(route.service_id());
      }
      return statusResponse(written.status());
    }
    return json(method == "POST" ? 201 : 200, config::encodeRoute(written->entity));
  }

  ApiResponse deleteRoute(const std::string& key) {
    std::string id = key;
    if (!config::isUuid(key)) {
      auto found = store_.getRoute(group_, key);
      if (absl::IsNotFound(found.status())) {
        return {204, ""};
      }
      if (!found.ok()) {
        return statusResponse(found.status());
      }
      id = found->id();
    }
    auto deleted = store_.deleteRoute(group_, id);
    if (!deleted.ok()) {
      return statusResponse(deleted.status());
    }
    return {204, ""};
  }

 private:
  PgConfigStore& store_;
  const std::string group_;
};

std::string hostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) {
    return "localhost";
  }
  return buf;
}

}  // namespace

AdminApi::AdminApi(PgConfigStore& store, const ServerCounters& counters)
    : store_(store), counters_(counters), node_id_(newUuid()) {}

ApiResponse AdminApi::handle(const ApiRequest& req) {
  const ParsedTarget t = parseTarget(req.target);
  const auto& seg = t.segments;
  const std::string& m = req.method;
  const bool is_write = m == "POST" || m == "PUT" || m == "PATCH";
  Handler h(store_, kDefaultGroup);

  std::optional<Json> body;
  if (is_write) {
    body = parseBody(req);
  }
  // Parsed lazily per endpoint so a bad body on an unknown path still answers 404.
  auto badBody = [&]() { return message(400, kCannotParseJson); };

  if (seg.empty()) {
    if (m != "GET") {
      return message(405, kMethodNotAllowed);
    }
    return json(200, Json{{"tagline", "Welcome to portico"},
                          {"version", "0.1.0"},
                          {"hostname", hostName()},
                          {"node_id", node_id_},
                          {"configuration",
                           {{"database", "postgres"}, {"role", "control_plane"}}}});
  }
  if (seg.size() == 1 && seg[0] == "status") {
    if (m != "GET") {
      return message(405, kMethodNotAllowed);
    }
    const bool reachable = store_.currentGeneration(kDefaultGroup).ok();
    return json(200, Json{{"database", {{"reachable", reachable}}},
                          {"server",
                           {{"connections_accepted", counters_.connections_accepted.load()},
                            {"connections_active", counters_.connections_active.load()},
                            {"total_requests", counters_.total_requests.load()}}}});
  }

  if (seg[0] == "services") {
    if (seg.size() == 1) {
      if (m == "GET") {
        return h.listServices(t);
      }
      if (m == "POST") {
        return body ? h.writeService(m, "", *body) : badBody();
      }
      return message(405, kMethodNotAllowed);
    }
    if (seg.size() == 2) {
      if (m == "GET") {
        return h.getService(seg[1]);
      }
      if (m == "PUT" || m == "PATCH") {
        return body ? h.writeService(m, seg[1], *body) : badBody();
      }
      if (m == "DELETE") {
        return h.deleteService(seg[1]);
      }
      return message(405, kMethodNotAllowed);
    }
    if (seg.size() == 3 && seg[2] == "routes") {
      if (m == "GET") {
        return h.listRoutes(t, seg[1]);
      }
      if (m == "POST") {
        return body ? h.writeRoute(m, "", *body, seg[1]) : badBody();
      }
      return message(405, kMethodNotAllowed);
    }
  }
  if (seg[0] == "routes") {
    if (seg.size() == 1) {
      if (m == "GET") {
        return h.listRoutes(t, "");
      }
      if (m == "POST") {
        return body ? h.writeRoute(m, "", *body, "") : badBody();
      }
      return message(405, kMethodNotAllowed);
    }
    if (seg.size() == 2) {
      if (m == "GET") {
        return h.getRoute(seg[1]);
      }
      if (m == "PUT" || m == "PATCH") {
        return body ? h.writeRoute(m, seg[1], *body, "") : badBody();
      }
      if (m == "DELETE") {
        return h.deleteRoute(seg[1]);
      }
      return message(405, kMethodNotAllowed);
    }
    if (seg.size() == 3 && seg[2] == "service") {
      if (m == "GET") {
        return h.getRouteService(seg[1]);
      }
      return message(405, kMethodNotAllowed);
    }
  }
  return message(404, kNotFound);
}

}  // namespace portico::cp
