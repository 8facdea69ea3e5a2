#include "control_plane/admin_api/admin_util.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <random>
#include <tuple>

#include "common/config/entities.h"
#include "common/config/json_limits.h"
#include "common/logging.h"
#include "control_plane/admin_api/form.h"

namespace portico::cp::admin {
namespace {

// The body as JSON; an empty body is an empty object.
// Deeper than config::kMaxJsonDepth is refused before parsing (*too_deep).
std::optional<Json> parseBody(const ApiRequest& req, bool* too_deep) {
  if (req.body.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Json::object();
  }
  return config::parseUntrustedJson(req.body, config::kMaxJsonDepth, too_deep);
}

// Strings reach PostgreSQL as text or jsonb, and headers and hosts on the DP: none takes a
// NUL byte or invalid UTF-8, in a value or in a key, whatever the field.
void refuseBadText(Body* b) {
  if (std::optional<config::BadText> bad = config::findBadText(b->value)) {
    b->kind = BodyKind::kRefused;
    b->refused.push_back({"", "", bad->path, bad->reason});
  }
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

ApiResponse json(int status, const Json& body) { return {status, body.dump()}; }
ApiResponse message(int status, const std::string& text) {
  return json(status, Json{{"message", text}});
}

ApiResponse schemaViolation(const config::FieldErrors& errors) {
  const std::string summary = config::errorSummary(errors);
  return kongError(kSchemaViolation, "schema violation",
                   errors.size() == 1
                       ? "schema violation (" + summary + ")"
                       : std::to_string(errors.size()) + " schema violations (" + summary + ")",
                   config::fieldsObject(errors));
}

ApiResponse kongError(int code, const std::string& name, const std::string& msg,
                      std::optional<Json> fields) {
  Json body{{"code", code}, {"name", name}, {"message", msg}};
  if (fields) {
    body["fields"] = *fields;
  }
  const int status = code == kUniqueViolation ? 409 : code == 6 ? 404 : code == 8 ? 500 : 400;
  return json(status, body);
}

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

std::string invalidBodyMessage(const Body& b) {
  if (!b.form_error.empty()) {
    return "Cannot parse form body: " + b.form_error;
  }
  return b.too_deep ? std::string(kCannotParseJson) + ": nested deeper than " +
                          std::to_string(config::kMaxJsonDepth) + " levels"
                    : std::string(kCannotParseJson);
}

Body readBody(const ApiRequest& req) {
  Body b;
  std::string ct = req.content_type;
  std::transform(ct.begin(), ct.end(), ct.begin(), ::tolower);
  if (ct.find("application/x-www-form-urlencoded") != std::string::npos) {
    b.kind = BodyKind::kForm;
    std::optional<Json> form = parseKongForm(req.body, &b.form_error);
    if (!form) {
      b.kind = BodyKind::kInvalid;
      return b;
    }
    b.value = std::move(*form);
    refuseBadText(&b);
    return b;
  }
  if (!ct.empty() && ct.find("application/json") == std::string::npos) {
    b.kind = BodyKind::kUnsupported;
    return b;
  }
  std::optional<Json> j = parseBody(req, &b.too_deep);
  if (!j) {
    b.kind = BodyKind::kInvalid;
    return b;
  }
  b.value = std::move(*j);
  refuseBadText(&b);
  return b;
}

// Checked per endpoint, after its path matched: a bad body on an unknown path answers 404.
std::optional<ApiResponse> bodyError(const Body& b) {
  if (b.kind == BodyKind::kInvalid) {
    return message(400, invalidBodyMessage(b));
  }
  if (b.kind == BodyKind::kRefused) {
    return schemaViolation(b.refused);
  }
  if (b.kind == BodyKind::kUnsupported) {
    return message(415, "Unsupported Media Type");
  }
  return std::nullopt;
}

std::optional<config::FieldError> readPageRequest(
    const std::map<std::string, std::string>& query, PageRequest* page) {
  PageRequest read = *page;
  for (auto [key, out, max] : {std::tuple<const char*, int*, int>{"page[size]", &read.size, 1000},
                               {"page[number]", &read.number, 1 << 30}}) {
    if (auto it = query.find(key); it != query.end()) {
      char* end = nullptr;
      const long v = std::strtol(it->second.c_str(), &end, 10);
      if (it->second.empty() || *end != '\0' || v < 1 || v > max) {
        return config::FieldError{"", "", key,
                                  "must be an integer between 1 and " + std::to_string(max)};
      }
      *out = static_cast<int>(v);
    }
  }
  *page = read;
  return std::nullopt;
}

Json pageBody(Json data, const PageRequest& page, uint64_t total) {
  return Json{{"data", std::move(data)},
              {"meta",
               {{"page", {{"number", page.number}, {"size", page.size}, {"total", total}}}}}};
}

std::optional<ApiResponse> processEntity(const std::string& type, const Json& input, Json* out) {
  config::FieldErrors errors = config::processEntityJson(type, input, out);
  if (errors.empty()) {
    errors = config::checkEntitySize(type, *out);
  }
  if (!errors.empty()) {
    return schemaViolation(errors);
  }
  return std::nullopt;
}

}  // namespace portico::cp::admin
