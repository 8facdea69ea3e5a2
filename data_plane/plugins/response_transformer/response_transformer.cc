// response-transformer: edits the response headers and a JSON response body (Kong 3.10,
// PRIORITY 800, header_filter and body_filter).
//
// Headers, in Kong's order: remove, rename (if present), replace (if present), add (if
// absent), append; "present" is judged on the headers as the response arrived, as Kong's
// handler reads them once. With a `json` edit configured and a JSON Content-Type the whole
// body is held (RequestContext::bufferResponseBody, bounded by the proxy's
// max_response_body_buffer) and edited: remove, rename, replace (if truthy), add (if absent or
// false), append. A body that is not a JSON object, nests too deep or is over the buffer goes
// out unchanged and is counted; the response never fails because of it.
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/entities.h"
#include "common/config/json_limits.h"
#include "common/config/schema.h"
#include "common/http/http_parser.h"
#include "data_plane/plugins/mime_type.h"
#include "data_plane/plugins/plugin.h"
#include "data_plane/plugins/plugin_stats.h"

namespace portico::dp::plugins::response_transformer {
namespace {

using config::Json;

PluginCounter g_too_large("portico_dp_response_transformer_too_large_total",
                          "response-transformer: JSON bodies over the proxy's response buffer, "
                          "sent unchanged.");
PluginCounter g_not_json("portico_dp_response_transformer_not_json_total",
                         "response-transformer: bodies with a JSON Content-Type that are not a "
                         "JSON object (or nest too deep), sent unchanged.");

struct Pair {
  std::string name;
  std::optional<std::string> value;  // Kong's iter gives nil for an empty value
};

// A json entry whose value is already what Kong's json_value() makes of it; nullopt when Kong
// gets nil (a number that does not parse) and skips the entry.
struct JsonPair {
  std::string name;
  std::optional<Json> value;
};

struct HeaderOps {
  std::vector<std::string> remove;
  std::vector<Pair> rename, replace, add, append;
};

struct JsonOps {
  std::vector<std::string> remove;
  std::vector<Pair> rename;
  std::vector<JsonPair> replace, add, append;
  bool any() const {
    return !remove.empty() || !rename.empty() || !replace.empty() || !add.empty() ||
           !append.empty();
  }
};

class Config final : public PluginConfig {
 public:
  std::string_view name() const override { return "response-transformer"; }
  int32_t priority() const override { return 800; }
  PluginPtr createPlugin() const override;

  HeaderOps headers;
  JsonOps json;
};

Pair toPair(std::string_view entry) {
  std::string_view name, value;
  config::splitNameValue(entry, &name, &value);
  Pair p{std::string(name), std::nullopt};
  if (!value.empty()) {
    p.value.emplace(value);
  }
  return p;
}

// What cjson.encode does to a string, minus the quotes Kong strips again (and with `\"` and
// `\/` turned back into `"` and `/`): so a backslash or a control character in a configured
// value reaches the body escaped once more, as it does in Kong.
std::string kongJsonValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (u < 0x20 || u == 0x7f) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out.push_back(kHex[u >> 4]);
          out.push_back(kHex[u & 15]);
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

// Lua's tonumber() on a string: surrounding space allowed, decimal or 0x hex.
std::optional<double> luaToNumber(const std::string& s) {
  size_t b = 0, e = s.size();
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
                                   c == '\f' || c == '\v'; };
  while (b < e && space(s[b])) ++b;
  while (e > b && space(s[e - 1])) --e;
  if (b == e) {
    return std::nullopt;
  }
  const std::string t = s.substr(b, e - b);
  char* end = nullptr;
  double v = 0;
  size_t digits = 0;
  for (char c : t) digits += (c >= '0' && c <= '9') ? 1 : 0;
  const std::string_view body = t[0] == '-' || t[0] == '+' ? std::string_view(t).substr(1) : t;
  if (body.size() > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X')) {
    v = static_cast<double>(std::strtoull(body.data() + 2, &end, 16));
    if (t[0] == '-') v = -v;
  } else {
    // strtod would also take "inf", "nan" and hex floats, which Lua's tonumber refuses.
    if (digits == 0 || t.find_first_of("iInN") != std::string::npos) {
      return std::nullopt;
    }
    v = std::strtod(t.c_str(), &end);
  }
  if (end == nullptr || *end != '\0' || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

// Kong's json_value(value, json_type).
std::optional<Json> jsonValue(const std::optional<std::string>& value, std::string_view type) {
  // cjson.encode(nil) is "null": an empty value becomes the string "null".
  const std::string v = value ? kongJsonValue(*value) : std::string("null");
  if (type == "number") {
    const std::optional<double> n = luaToNumber(v);
    if (!n) {
      return std::nullopt;
    }
    // cjson writes numbers with %.14g: an integral one has no decimal point.
    if (std::trunc(*n) == *n && std::fabs(*n) < 9007199254740992.0) {
      return Json(static_cast<int64_t>(*n));
    }
    return Json(*n);
  }
  if (type == "boolean") {
    return Json(v == "true");
  }
  return Json(v);
}

// conf[key], or null when absent (a hand-written declarative config may leave defaults out;
// const operator[] on a missing key is undefined).
const Json& at(const Json& j, const char* key) {
  static const Json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

std::vector<JsonPair> typedPairs(const Json& rec) {
  std::vector<JsonPair> out;
  const Json& types = at(rec, "json_types");
  size_t i = 0;
  for (const Json& e : at(rec, "json")) {
    const Pair p = toPair(e.get<std::string>());
    const std::string type = i < types.size() ? types[i].get<std::string>() : "";
    out.push_back(JsonPair{p.name, jsonValue(p.value, type)});
    ++i;
  }
  return out;
}

std::vector<Pair> pairsOf(const Json& list) {
  std::vector<Pair> out;
  for (const Json& e : list) out.push_back(toPair(e.get<std::string>()));
  return out;
}

std::vector<std::string> namesOf(const Json& list) {
  std::vector<std::string> out;
  for (const Json& e : list) out.push_back(e.get<std::string>());
  return out;
}

// One of the comma-separated media types is application/json or application/<x>+json
// (Kong's is_json_body: mime_type.includes).
bool isJsonBody(std::string_view content_type) {
  size_t b = 0;
  while (b <= content_type.size()) {
    size_t e = content_type.find(',', b);
    if (e == std::string_view::npos) e = content_type.size();
    static const MediaType kJson{"application", "json", {}};
    const std::optional<MediaType> mt = parseMediaType(content_type.substr(b, e - b));
    if (mt && includes(kJson, *mt)) return true;
    b = e + 1;
  }
  return false;
}

// Lua truthiness of json_body[name]: absent and false are falsy; JSON null (cjson.null, a
// light userdata) is truthy.
bool truthy(const Json& obj, const std::string& name) {
  const auto it = obj.find(name);
  return it != obj.end() && !(it->is_boolean() && !it->get<bool>());
}

// Kong's append_value.
void appendValue(Json& obj, const std::string& name, const Json& v) {
  const auto it = obj.find(name);
  if (it == obj.end() || !(it->is_string() || it->is_array() || it->is_object())) {
    obj[name] = Json::array({v});
  } else if (it->is_string()) {
    *it = Json::array({*it, v});
  } else if (it->is_array()) {
    it->push_back(v);
  } else if (it->empty()) {
    *it = Json::array({v});  // table.insert on an empty table makes an array
  } else {
    (*it)["1"] = v;  // table.insert on a Lua hash: key 1, written out as "1"
  }
}

void transformJson(const JsonOps& ops, Json& body) {
  for (const std::string& name : ops.remove) {
    body.erase(name);
  }
  for (const Pair& p : ops.rename) {
    if (p.value && body.contains(p.name)) {
      Json v = body[p.name];
      body[*p.value] = std::move(v);
      body.erase(p.name);  // also when renamed to itself: Kong sets, then clears
    }
  }
  for (const JsonPair& p : ops.replace) {
    if (p.value && truthy(body, p.name)) {
      body[p.name] = *p.value;
    }
  }
  for (const JsonPair& p : ops.add) {
    if (p.value && !truthy(body, p.name)) {
      body[p.name] = *p.value;
    }
  }
  for (const JsonPair& p : ops.append) {
    if (p.value) {
      appendValue(body, p.name, *p.value);
    }
  }
}

class ResponseTransformer final : public Plugin {
 public:
  explicit ResponseTransformer(const Config& config) : config_(config) {}

  void onResponseHeaders(RequestContext& ctx) override {
    const HeaderOps& h = config_.headers;
    auto present = [&ctx](const std::string& name) {
      std::string_view ignored;
      return ctx.responseHeader(name, &ignored);
    };
    for (const std::string& name : h.remove) {
      ctx.removeResponseHeader(name);
    }
    for (const Pair& p : h.rename) {
      if (p.value && present(p.name)) {
        std::vector<std::string_view> values;
        ctx.responseHeaderValues(p.name, &values);
        const std::vector<std::string> copies(values.begin(), values.end());
        ctx.removeResponseHeader(*p.value);
        for (const std::string& v : copies) {
          ctx.addResponseHeader(*p.value, v);
        }
        ctx.removeResponseHeader(p.name);
      }
    }
    for (const Pair& p : h.replace) {
      if (p.value && present(p.name)) {
        ctx.setResponseHeader(p.name, *p.value);
      }
    }
    for (const Pair& p : h.add) {
      if (p.value && !present(p.name)) {
        ctx.setResponseHeader(p.name, *p.value);
      }
    }
    for (const Pair& p : h.append) {
      if (p.value) {
        ctx.addResponseHeader(p.name, *p.value);
      }
    }
    std::string_view type;
    if (config_.json.any() && ctx.responseHeader("Content-Type", &type) && isJsonBody(type)) {
      // The body changes: the proxy holds it and sends it with its new length.
      ctx.bufferResponseBody();
      edit_body_ = true;
    }
  }

  void onBufferedResponseBody(RequestContext&, std::string* body) override {
    if (!edit_body_) {
      return;
    }
    if (body == nullptr) {
      g_too_large.inc();
      return;
    }
    std::optional<Json> parsed = config::parseUntrustedJson(*body);
    // A top-level array or scalar is left alone: Kong's edits index it as an object.
    if (!parsed || !parsed->is_object()) {
      g_not_json.inc();
      return;
    }
    transformJson(config_.json, *parsed);
    *body = parsed->dump(-1, ' ', false, Json::error_handler_t::replace);
  }

 private:
  const Config& config_;
  bool edit_body_ = false;
};

PluginPtr Config::createPlugin() const { return std::make_unique<ResponseTransformer>(*this); }

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&, const Json& conf) {
  auto c = std::make_shared<Config>();
  c->headers.remove = namesOf(at(at(conf, "remove"), "headers"));
  c->headers.rename = pairsOf(at(at(conf, "rename"), "headers"));
  c->headers.replace = pairsOf(at(at(conf, "replace"), "headers"));
  c->headers.add = pairsOf(at(at(conf, "add"), "headers"));
  c->headers.append = pairsOf(at(at(conf, "append"), "headers"));
  c->json.remove = namesOf(at(at(conf, "remove"), "json"));
  c->json.rename = pairsOf(at(at(conf, "rename"), "json"));
  c->json.replace = typedPairs(at(conf, "replace"));
  c->json.add = typedPairs(at(conf, "add"));
  c->json.append = typedPairs(at(conf, "append"));
  return c;
}

}  // namespace portico::dp::plugins::response_transformer
