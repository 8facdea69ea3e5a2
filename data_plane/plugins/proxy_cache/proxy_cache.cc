// proxy-cache (Kong 3.10, PRIORITY 100): answers cacheable requests from the process's memory
// store (cache_store.h) without calling the upstream.
//
// Access: a request whose method is not listed (or, with cache_control, that says no-store or
// no-cache or carries Authorization) is a Bypass. Otherwise Kong's key is computed:
// sha256_hex("<consumer:route | route | default>|<method>|<request line without query>|
// <query args>|<vary headers>"); a fresh entry is served (Hit, with Age), a stale one or none
// lets the request through (Refresh / Miss) and marks it for storing. Header phase: the
// response is stored only if its status and Content-Type are listed and, with cache_control,
// its Cache-Control allows it; else Bypass. Body phase: the whole body is kept and stored at
// its end.
//
// Beyond Kong, and always (cache poisoning, RFC 9111 §3 and §4.1): a response that sets a
// cookie, says private or no-store, or varies on a header outside vary_headers (or on `*`) is
// never stored; nor one to a request with Authorization that no plugin authenticated, unless
// the response says public, s-maxage or must-revalidate.
#include <openssl/sha.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/schema.h"
#include "common/http/http_parser.h"
#include "data_plane/plugins/consumers.h"
#include "data_plane/plugins/mime_type.h"
#include "data_plane/plugins/plugin.h"
#include "data_plane/plugins/plugin_stats.h"
#include "data_plane/plugins/proxy_cache/cache_store.h"
#include "data_plane/plugins/request_util.h"

namespace portico::dp::plugins::proxy_cache {
namespace {

using config::Json;
using http::equalsIgnoreCase;

PluginCounter g_hits("portico_dp_proxy_cache_hits_total", "proxy-cache: responses served from the cache.");
PluginCounter g_stores("portico_dp_proxy_cache_stores_total",
                       "proxy-cache: responses stored in the cache.");
PluginCounter g_refused("portico_dp_proxy_cache_refused_total",
                        "proxy-cache: responses not stored because they set a cookie, are "
                        "private, vary on an unkeyed header or answer an unauthenticated "
                        "Authorization (cache poisoning guards).");
PluginCounter g_too_large("portico_dp_proxy_cache_too_large_total",
                          "proxy-cache: responses too large for a cache entry, not stored.");

constexpr char kStatus[] = "X-Cache-Status";
constexpr char kKey[] = "X-Cache-Key";

int64_t nowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------------------------------------
// Cache-Control (kong.tools.http.parse_directive_header): directive -> number, string or true.

struct Directive {
  std::optional<double> number;
  bool present = false;
};
using Directives = std::map<std::string, Directive, std::less<>>;

Directives parseDirectives(const std::vector<std::string_view>& values) {
  Directives out;
  for (std::string_view v : values) {
    size_t b = 0;
    while (b < v.size()) {
      size_t e = v.find(',', b);
      if (e == std::string_view::npos) e = v.size();
      std::string_view d = v.substr(b, e - b);
      b = e + 1;
      while (!d.empty() && (d.front() == ' ' || d.front() == '\t')) d.remove_prefix(1);
      const size_t eq = d.find('=');
      std::string_view name = d.substr(0, eq);
      while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
      if (name.empty()) continue;
      std::string key(name);
      std::transform(key.begin(), key.end(), key.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      Directive dir;
      dir.present = true;
      if (eq != std::string_view::npos) {
        std::string value(d.substr(eq + 1));
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
          value = value.substr(1, value.size() - 2);
        }
        char* end = nullptr;
        const double n = std::strtod(value.c_str(), &end);
        if (!value.empty() && end != nullptr && *end == '\0') dir.number = n;
      }
      out[key] = dir;
    }
  }
  return out;
}

bool has(const Directives& d, std::string_view name) { return d.find(name) != d.end(); }
std::optional<double> number(const Directives& d, std::string_view name) {
  auto it = d.find(name);
  return it == d.end() ? std::nullopt : it->second.number;
}

// ---------------------------------------------------------------------------------------------
// Config

class Config final : public PluginConfig {
 public:
  std::string_view name() const override { return "proxy-cache"; }
  int32_t priority() const override { return 100; }
  PluginPtr createPlugin() const override;
  bool wantsResponseBody() const override { return true; }

  std::vector<int> response_codes;
  std::vector<std::string> methods;
  std::vector<MediaType> content_types;
  int64_t cache_ttl = 300;
  bool cache_control = false;
  bool ignore_uri_case = false;
  std::optional<int64_t> storage_ttl;
  std::vector<std::string> vary_query_params;  // empty: every argument
  std::vector<std::string> vary_headers;
  bool age_header = true, status_header = true, key_header = true;
};

// ---------------------------------------------------------------------------------------------
// The cache key (kong/plugins/proxy-cache/cache_key.lua).

// ngx.decode_args (at most 100 arguments): name -> values; a flag argument has no value.
struct Arg {
  std::vector<std::string> values;
  bool flag = false;
};

std::map<std::string, Arg> decodeArgs(std::string_view q) {
  std::map<std::string, Arg> args;
  size_t count = 0;
  while (!q.empty() && count < 100) {
    const size_t amp = q.find('&');
    const std::string_view part = q.substr(0, amp);
    q = amp == std::string_view::npos ? "" : q.substr(amp + 1);
    if (part.empty()) continue;
    ++count;
    const size_t eq = part.find('=');
    std::string name, value;
    if (!decodeQueryComponent(part.substr(0, eq), &name)) name = std::string(part.substr(0, eq));
    if (name.empty()) continue;
    Arg& a = args[name];
    if (eq == std::string_view::npos) {
      a.flag = true;
      continue;
    }
    if (!decodeQueryComponent(part.substr(eq + 1), &value)) value = part.substr(eq + 1);
    a.values.push_back(std::move(value));
  }
  return args;
}

// generate_key_from: "field=v" (several values sorted and joined by ","), a flag as "field",
// fields joined by ":".
void appendField(const std::string& field, std::vector<std::string> values, bool flag,
                 std::string* out) {
  if (values.empty() && !flag) return;
  if (!out->empty()) out->push_back(':');
  out->append(field);
  if (values.empty()) return;
  std::sort(values.begin(), values.end());
  out->push_back('=');
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->append(values[i]);
  }
}

std::string sha256Hex(std::string_view s) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * SHA256_DIGEST_LENGTH);
  for (unsigned char c : digest) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string cacheKey(const Config& c, RequestContext& ctx) {
  std::string input;
  const Consumer* consumer = ctx.consumer();
  const config::v1::Route* route = ctx.route();
  if (consumer != nullptr && consumer->entity != nullptr && route != nullptr) {
    input.append(consumer->entity->id()).append(":").append(route->id());
  } else if (route != nullptr) {
    input.append(route->id());
  } else {
    input.append("default");
  }
  const http::RequestHead& head = ctx.requestHead();
  input.append("|").append(ctx.method()).append("|");
  // ngx.var.request with "\?.*" removed: "GET /p HTTP/1.1", or "GET /p" when there was a query.
  std::string uri(ctx.method());
  uri.append(" ").append(head.target.substr(0, head.target.find('?')));
  if (head.target.find('?') == std::string_view::npos) {
    uri.append(head.version == http::Version::kHttp10 ? " HTTP/1.0" : " HTTP/1.1");
  }
  if (c.ignore_uri_case) {
    std::transform(uri.begin(), uri.end(), uri.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  }
  input.append(uri).append("|");
  const std::map<std::string, Arg> args = decodeArgs(ctx.query());
  std::string params;
  if (c.vary_query_params.empty()) {
    for (const auto& [name, arg] : args) appendField(name, arg.values, arg.flag, &params);
  } else {
    for (const std::string& name : c.vary_query_params) {
      auto it = args.find(name);
      if (it != args.end()) appendField(name, it->second.values, it->second.flag, &params);
    }
  }
  input.append(params).append("|");
  std::string headers;
  for (const std::string& name : c.vary_headers) {
    std::vector<std::string> values;
    for (uint32_t i = 0; i < head.num_headers; ++i) {
      if (equalsIgnoreCase(head.headers[i].name, name)) {
        values.emplace_back(head.headers[i].value);
      }
    }
    appendField(name, std::move(values), false, &headers);
  }
  input.append(headers);
  return sha256Hex(input);
}

// ---------------------------------------------------------------------------------------------
// The per-request plugin

bool hopByHop(std::string_view name) {
  for (std::string_view h : {"connection", "keep-alive", "proxy-authenticate",
                             "proxy-authorization", "te", "trailers", "transfer-encoding",
                             "upgrade", "content-length"}) {
    if (equalsIgnoreCase(name, h)) return true;
  }
  return false;
}

bool containsIgnoreCase(std::string_view s, std::string_view needle) {
  if (needle.size() > s.size()) return false;
  for (size_t i = 0; i + needle.size() <= s.size(); ++i) {
    if (equalsIgnoreCase(s.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

class ProxyCache final : public Plugin {
 public:
  explicit ProxyCache(const Config& c) : c_(c) {}

  PhaseResult onRequest(RequestContext& ctx) override {
    std::string_view ignored;
    debug_ = ctx.requestHeader("Kong-Debug", &ignored);
    std::vector<std::string_view> cc_values;
    collect(ctx.requestHead(), "Cache-Control", &cc_values);
    const Directives cc = parseDirectives(cc_values);
    authorization_ = ctx.requestHeader("Authorization", &ignored);
    if (!cacheableRequest(ctx, cc)) {
      setHeader(ctx, kStatus, "Bypass", c_.status_header);
      return PhaseResult::kContinue;
    }
    key_ = cacheKey(c_, ctx);
    authenticated_ = ctx.consumer() != nullptr;
    setHeader(ctx, kKey, key_, c_.key_header);
    const int64_t now = nowSeconds();
    CachedResponseConstPtr res = CacheStore::instance().fetch(key_, now);
    if (res == nullptr) {
      if (c_.cache_control && has(cc, "only-if-cached")) {
        ctx.sendLocalBody(504, "", "");
        return PhaseResult::kStop;
      }
      return mark(ctx, "Miss");
    }
    const int64_t age = now - res->timestamp_s;
    if (c_.cache_control) {
      if (auto max_age = number(cc, "max-age"); max_age && age > *max_age) {
        return mark(ctx, "Refresh");
      }
      if (auto stale = number(cc, "max-stale"); stale && age - res->ttl_s > *stale) {
        return mark(ctx, "Refresh");
      }
      if (auto fresh = number(cc, "min-fresh"); fresh && res->ttl_s - age < *fresh) {
        return mark(ctx, "Refresh");
      }
    } else if (age > c_.cache_ttl) {
      return mark(ctx, "Refresh");
    }
    // A hit: the stored response, without hop-by-hop and rate-limit-remaining headers (they
    // describe another exchange), with Age and the cache headers.
    std::string_view content_type;
    for (const auto& [name, value] : res->headers) {
      if (hopByHop(name) || containsIgnoreCase(name, "ratelimit-remaining") ||
          equalsIgnoreCase(name, "age") || equalsIgnoreCase(name, kStatus) ||
          equalsIgnoreCase(name, kKey) || equalsIgnoreCase(name, "date") ||
          equalsIgnoreCase(name, "server") || equalsIgnoreCase(name, "via")) {
        continue;  // the reply writes its own Date, Server and length
      }
      if (equalsIgnoreCase(name, "content-type")) {
        content_type = value;
        continue;
      }
      ctx.addResponseHeader(name, value);
    }
    setHeader(ctx, "Age", std::to_string(age), c_.age_header);
    setHeader(ctx, kStatus, "Hit", c_.status_header);
    setHeader(ctx, kKey, key_, c_.key_header);
    g_hits.inc();
    hit_ = res;  // the body stays alive until the reply is written
    ctx.sendLocalBody(res->status, res->body, content_type);
    return PhaseResult::kStop;
  }

  void onResponseHeaders(RequestContext& ctx) override {
    if (!storing_) {
      return;
    }
    std::vector<std::string_view> cc_values;
    ctx.responseHeaderValues("Cache-Control", &cc_values);
    const Directives cc = parseDirectives(cc_values);
    if (!cacheableResponse(ctx, cc)) {
      setHeader(ctx, kStatus, "Bypass", c_.status_header);
      storing_ = false;
      return;
    }
    ctx.responseHeaderList(&headers_);
    ttl_ = c_.cache_control ? resourceTtl(ctx, cc) : c_.cache_ttl;
    status_ = ctx.responseStatus();
  }

  void onResponseBody(RequestContext&, std::string_view data, bool end_of_body) override {
    if (!storing_) {
      return;
    }
    CacheStore& store = CacheStore::instance();
    if (body_.size() + data.size() > store.maxEntryBytes()) {
      g_too_large.inc();
      storing_ = false;
      body_.clear();
      return;
    }
    body_.append(data);
    if (!end_of_body) {
      return;
    }
    storing_ = false;
    auto res = std::make_shared<CachedResponse>();
    res->status = status_;
    res->headers = std::move(headers_);
    res->body = std::move(body_);
    res->timestamp_s = nowSeconds();
    res->ttl_s = ttl_;
    const int64_t storage = c_.storage_ttl ? *c_.storage_ttl : ttl_;
    if (store.store(key_, std::move(res), storage, nowSeconds())) {
      g_stores.inc();
    } else {
      g_too_large.inc();
    }
  }

 private:
  static void collect(const http::RequestHead& head, std::string_view name,
                      std::vector<std::string_view>* out) {
    for (uint32_t i = 0; i < head.num_headers; ++i) {
      if (equalsIgnoreCase(head.headers[i].name, name)) out->push_back(head.headers[i].value);
    }
  }

  // Kong's set_header: only when the config shows that header or the request has Kong-Debug.
  void setHeader(RequestContext& ctx, std::string_view name, std::string_view value,
                 bool enabled) const {
    if (enabled || debug_) {
      ctx.setResponseHeader(name, value);
    }
  }

  PhaseResult mark(RequestContext& ctx, std::string_view status) {
    storing_ = true;
    setHeader(ctx, kStatus, status, c_.status_header);
    return PhaseResult::kContinue;
  }

  bool cacheableRequest(RequestContext& ctx, const Directives& cc) const {
    if (std::find(c_.methods.begin(), c_.methods.end(), ctx.method()) == c_.methods.end()) {
      return false;
    }
    return !(c_.cache_control && (has(cc, "no-store") || has(cc, "no-cache") || authorization_));
  }

  bool cacheableResponse(RequestContext& ctx, const Directives& cc) const {
    const int status = ctx.responseStatus();
    if (std::find(c_.response_codes.begin(), c_.response_codes.end(), status) ==
        c_.response_codes.end()) {
      return false;
    }
    std::vector<std::string_view> types;
    ctx.responseHeaderValues("Content-Type", &types);
    std::string_view local_type;
    if (types.empty() && ctx.responseHeader("Content-Type", &local_type)) {
      types.push_back(local_type);  // a reply of our own
    }
    if (types.size() != 1 || types[0].empty()) {
      return false;
    }
    const std::optional<MediaType> mt = parseMediaType(types[0]);
    if (!mt || !contentTypeListed(*mt)) {
      return false;
    }
    if (c_.cache_control && (has(cc, "private") || has(cc, "no-store") || has(cc, "no-cache"))) {
      return false;
    }
    if (c_.cache_control && resourceTtl(ctx, cc) <= 0) {
      return false;
    }
    if (poisonous(ctx, cc)) {
      g_refused.inc();
      return false;
    }
    return true;
  }

  bool contentTypeListed(const MediaType& mt) const {
    for (const MediaType& want : c_.content_types) {
      if ((want.type == "*" || want.type == mt.type) &&
          (want.subtype == "*" || want.subtype == mt.subtype) && want.params == mt.params) {
        return true;
      }
    }
    return false;
  }

  // The guards Kong lacks (see the top of this file).
  bool poisonous(RequestContext& ctx, const Directives& cc) const {
    std::string_view ignored;
    if (ctx.responseHeader("Set-Cookie", &ignored) || has(cc, "private") ||
        has(cc, "no-store")) {
      return true;
    }
    std::vector<std::string_view> vary;
    ctx.responseHeaderValues("Vary", &vary);
    for (std::string_view v : vary) {
      size_t b = 0;
      while (b <= v.size()) {
        size_t e = v.find(',', b);
        if (e == std::string_view::npos) e = v.size();
        std::string_view name = v.substr(b, e - b);
        b = e + 1;
        while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.remove_prefix(1);
        while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
        if (name.empty()) continue;
        if (name == "*") return true;
        const bool keyed = std::any_of(c_.vary_headers.begin(), c_.vary_headers.end(),
                                       [name](const std::string& h) {
                                         return equalsIgnoreCase(h, name);
                                       });
        if (!keyed) return true;
      }
    }
    if (authorization_ && !authenticated_ && !has(cc, "public") && !has(cc, "s-maxage") &&
        !has(cc, "must-revalidate")) {
      return true;
    }
    return false;
  }

  // kong.tools.http.calculate_resource_ttl: s-maxage, else max-age, else Expires - now; >= 0.
  static int64_t resourceTtl(RequestContext& ctx, const Directives& cc) {
    std::optional<double> max_age = number(cc, "s-maxage");
    if (!max_age) max_age = number(cc, "max-age");
    if (!max_age) {
      std::vector<std::string_view> expires;
      ctx.responseHeaderValues("Expires", &expires);
      if (!expires.empty()) {
        if (const std::optional<int64_t> t = parseHttpDate(expires.back())) {
          max_age = static_cast<double>(*t - nowSeconds());
        }
      }
    }
    return max_age ? std::max<int64_t>(static_cast<int64_t>(*max_age), 0) : 0;
  }

  // An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") as epoch seconds.
  static std::optional<int64_t> parseHttpDate(std::string_view s) {
    static constexpr std::string_view kMonths = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char wday[4] = {}, mon[4] = {};
    int day = 0, year = 0, hh = 0, mm = 0, ss = 0;
    const std::string str(s);
    if (std::sscanf(str.c_str(), "%3s, %d %3s %d %d:%d:%d GMT", wday, &day, mon, &year, &hh,
                    &mm, &ss) != 7) {
      return std::nullopt;
    }
    const size_t m = kMonths.find(mon);
    if (m == std::string_view::npos || m % 3 != 0) return std::nullopt;
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = static_cast<int>(m / 3);
    tm.tm_mday = day;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    return static_cast<int64_t>(timegm(&tm));
  }

  const Config& c_;
  bool debug_ = false;
  bool authorization_ = false;
  bool authenticated_ = false;
  bool storing_ = false;
  std::string key_;
  int status_ = 0;
  int64_t ttl_ = 0;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::string body_;
  CachedResponseConstPtr hit_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<ProxyCache>(*this); }

std::vector<std::string> strings(const Json& v) {
  std::vector<std::string> out;
  if (v.is_array()) {
    for (const Json& e : v) out.push_back(e.get<std::string>());
  }
  return out;
}

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&, const Json& conf) {
  auto c = std::make_shared<Config>();
  // A config from the CP has every default filled; a hand-written declarative one may not.
  auto field = [&conf](const char* name, Json def) {
    auto it = conf.find(name);
    return it == conf.end() || it->is_null() ? def : *it;
  };
  for (const Json& code : field("response_code", Json::array({200, 301, 404}))) {
    c->response_codes.push_back(code.get<int>());
  }
  c->methods = strings(field("request_method", Json::array({"GET", "HEAD"})));
  for (const std::string& t :
       strings(field("content_type", Json::array({"text/plain", "application/json"})))) {
    std::optional<MediaType> mt = parseMediaType(t);
    if (mt) {
      c->content_types.push_back(std::move(*mt));  // Kong skips a type it cannot parse
    }
  }
  c->cache_ttl = conf.value("cache_ttl", int64_t{300});
  c->cache_control = conf.value("cache_control", false);
  c->ignore_uri_case = conf.value("ignore_uri_case", false);
  if (conf.contains("storage_ttl") && conf["storage_ttl"].is_number()) {
    c->storage_ttl = conf["storage_ttl"].get<int64_t>();
  }
  c->vary_query_params = strings(field("vary_query_params", Json()));
  c->vary_headers = strings(field("vary_headers", Json()));
  const Json rh = field("response_headers", Json());
  if (rh.is_object()) {
    c->age_header = rh.value("age", true);
    c->status_header = rh.value("X-Cache-Status", true);
    c->key_header = rh.value("X-Cache-Key", true);
  }
  return c;
}

}  // namespace portico::dp::plugins::proxy_cache
