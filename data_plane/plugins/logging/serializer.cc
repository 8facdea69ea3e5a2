#include "data_plane/plugins/logging/serializer.h"

#include <array>
#include <atomic>
#include <charconv>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/config/entities.h"
#include "common/config/proto_json.h"
#include "data_plane/plugins/consumers.h"

namespace portico::dp::plugins::logging {
namespace {

// Kong's get_headers()/get_query() return at most 100 entries (their default max).
constexpr size_t kMaxPairs = 100;

void appendString(std::string_view s, std::string* out) {
  out->push_back('"');
  appendJsonEscaped(s, out);
  out->push_back('"');
}

void appendKey(std::string_view key, std::string* out) {
  if (out->back() != '{') {
    out->push_back(',');
  }
  appendString(key, out);
  out->push_back(':');
}

void appendInt(int64_t v, std::string* out) {
  char buf[24];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, static_cast<size_t>(r.ptr - buf));
}

char lowerChar(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lowerChar(a[i]) != lowerChar(b[i])) return false;
  }
  return true;
}

void appendLowerString(std::string_view s, std::string* out) {
  out->push_back('"');
  const size_t at = out->size();
  appendJsonEscaped(s, out);
  for (size_t i = at; i < out->size(); ++i) (*out)[i] = lowerChar((*out)[i]);
  out->push_back('"');
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

struct Pair {
  std::string_view name;
  std::string_view value;
};

// The header fields of a head (its first line skipped) as Kong's get_headers() returns them:
// names lower-cased, a repeated name as an array of its values in order. No allocation: names
// are compared in place (heads have a few dozen fields at most).
void appendHeaders(std::string_view head, bool redact, std::string* out) {
  std::array<Pair, kMaxPairs> fields;
  size_t n = 0;
  size_t eol = head.find('\n');
  while (eol != std::string_view::npos && n < kMaxPairs) {
    head.remove_prefix(eol + 1);
    eol = head.find('\n');
    const std::string_view line = head.substr(0, eol);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      continue;  // the blank line ending the head
    }
    fields[n++] = {line.substr(0, colon), trim(line.substr(colon + 1))};
  }
  out->push_back('{');
  for (size_t i = 0; i < n; ++i) {
    bool seen = false;
    for (size_t j = 0; j < i && !seen; ++j) seen = equalsIgnoreCase(fields[j].name, fields[i].name);
    if (seen) {
      continue;
    }
    if (out->back() != '{') out->push_back(',');
    appendLowerString(fields[i].name, out);
    out->push_back(':');
    if (redact && (equalsIgnoreCase(fields[i].name, "authorization") ||
                   equalsIgnoreCase(fields[i].name, "proxy-authorization"))) {
      out->append("\"REDACTED\"");  // the whole entry, also when repeated
      continue;
    }
    size_t count = 1;
    for (size_t k = i + 1; k < n; ++k) count += equalsIgnoreCase(fields[k].name, fields[i].name);
    if (count == 1) {
      appendString(fields[i].value, out);
      continue;
    }
    out->push_back('[');
    for (size_t k = i; k < n; ++k) {
      if (!equalsIgnoreCase(fields[k].name, fields[i].name)) continue;
      if (out->back() != '[') out->push_back(',');
      appendString(fields[k].value, out);
    }
    out->push_back(']');
  }
  out->push_back('}');
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// ngx_unescape_uri for arguments: '+' is a space, %XX a byte (a malformed escape stays).
void unescapeArg(std::string_view s, std::string* r) {
  r->clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      r->push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && hexValue(s[i + 1]) >= 0 &&
               hexValue(s[i + 2]) >= 0) {
      r->push_back(static_cast<char>(hexValue(s[i + 1]) * 16 + hexValue(s[i + 2])));
      i += 2;
    } else {
      r->push_back(s[i]);
    }
  }
}

// Kong's get_query(): decoded names and values, `true` for an argument without '=', a
// repeated name as an array. The decoding buffers are kept per thread.
void appendQuery(std::string_view query, std::string* out) {
  struct Arg {
    std::string key;
    std::string value;
    bool has_value = false;
  };
  thread_local std::vector<Arg> args;
  size_t n = 0;
  while (!query.empty() && n < kMaxPairs) {
    const size_t amp = query.find('&');
    const std::string_view arg = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    if (arg.empty()) {
      continue;
    }
    if (args.size() <= n) args.resize(n + 1);
    Arg& a = args[n];
    const size_t eq = arg.find('=');
    unescapeArg(arg.substr(0, eq), &a.key);
    if (a.key.empty()) {
      continue;
    }
    a.has_value = eq != std::string_view::npos;
    unescapeArg(a.has_value ? arg.substr(eq + 1) : std::string_view(), &a.value);
    ++n;
  }
  auto appendArg = [out](const Arg& a) {
    if (a.has_value) {
      appendString(a.value, out);
    } else {
      out->append("true");
    }
  };
  out->push_back('{');
  for (size_t i = 0; i < n; ++i) {
    bool seen = false;
    for (size_t j = 0; j < i && !seen; ++j) seen = args[j].key == args[i].key;
    if (seen) {
      continue;
    }
    if (out->back() != '{') out->push_back(',');
    appendString(args[i].key, out);
    out->push_back(':');
    size_t count = 1;
    for (size_t k = i + 1; k < n; ++k) count += args[k].key == args[i].key;
    if (count == 1) {
      appendArg(args[i]);
      continue;
    }
    out->push_back('[');
    for (size_t k = i; k < n; ++k) {
      if (args[k].key != args[i].key) continue;
      if (out->back() != '[') out->push_back(',');
      appendArg(args[k]);
    }
    out->push_back(']');
  }
  out->push_back('}');
}

// Kong's cached rows: no null field, and the workspace id.
std::string entityText(config::Json j) {
  for (auto it = j.begin(); it != j.end();) {
    it = it->is_null() ? j.erase(it) : std::next(it);
  }
  j["ws_id"] = std::string(kWorkspaceId);
  return j.dump(-1, ' ', false, config::Json::error_handler_t::replace);
}

std::atomic<uint64_t> g_serial{0};

// Each entity's JSON, built once per worker thread and plugin config (`serial`): entity
// addresses are stable for the life of the snapshot the config belongs to.
template <typename Message, typename Encode>
const std::string& cachedEntity(uint64_t serial, const Message& m, Encode encode) {
  thread_local absl::flat_hash_map<std::pair<const void*, uint64_t>, std::string> cache;
  auto it = cache.find(std::make_pair(static_cast<const void*>(&m), serial));
  if (it != cache.end()) {
    return it->second;
  }
  if (cache.size() >= 4096) {
    cache.clear();  // bounded: snapshots come and go
  }
  std::string& text = cache[std::make_pair(static_cast<const void*>(&m), serial)];
  text = entityText(encode(m));
  return text;
}

std::string_view sourceName(RequestContext::Source s) {
  switch (s) {
    case RequestContext::Source::kService:
      return "service";
    case RequestContext::Source::kExit:
      return "kong";
    default:
      return "error";  // Kong's get_source(): neither proxied nor exited
  }
}

std::string_view hostWithoutPort(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const size_t end = host.find(']');
    return end == std::string_view::npos ? host : host.substr(0, end + 1);
  }
  const size_t colon = host.find(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

}  // namespace

void appendJsonEscaped(std::string_view in, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t run = 0;  // start of the bytes not yet copied
  for (size_t i = 0; i < in.size(); ++i) {
    const auto u = static_cast<unsigned char>(in[i]);
    if (u >= 0x20 && u != '"' && u != '\\' && u != 0x7f) {
      continue;
    }
    out->append(in.data() + run, i - run);
    run = i + 1;
    switch (in[i]) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        out->append("\\u00");
        out->push_back(kHex[u >> 4]);
        out->push_back(kHex[u & 15]);
    }
  }
  out->append(in.data() + run, in.size() - run);
}

uint64_t newCacheSerial() { return g_serial.fetch_add(1, std::memory_order_relaxed) + 1; }

void serialize(const RequestContext& ctx, uint64_t cache_serial, std::string* out) {
  RequestContext::LogDetails d;
  ctx.logDetails(&d);
  const Latencies& lat = ctx.latencies();

  // The request target as received (nginx's $request_uri).
  std::string_view uri;
  std::string uri_buf;  // only without a kept head
  const std::string_view request_line = d.request_head.substr(0, d.request_head.find('\n'));
  if (const size_t sp = request_line.find(' '); sp != std::string_view::npos) {
    const size_t sp2 = request_line.find(' ', sp + 1);
    const std::string_view target = request_line.substr(sp + 1, sp2 - sp - 1);
    if (!target.empty() && target.front() == '/') {
      uri = target;
    }
  }
  if (uri.empty()) {
    uri_buf.assign(ctx.path());
    if (!ctx.query().empty()) {
      uri_buf.append("?").append(ctx.query());
    }
    uri = uri_buf;
  }

  out->append("{\"request\":{");
  {
    appendKey("uri", out);
    appendString(uri, out);
    appendKey("url", out);
    out->push_back('"');
    appendJsonEscaped(ctx.scheme(), out);
    out->append("://");
    const size_t host_at = out->size();
    appendJsonEscaped(hostWithoutPort(ctx.host()), out);
    for (size_t i = host_at; i < out->size(); ++i) (*out)[i] = lowerChar((*out)[i]);
    if (ctx.serverPort() != 0) {
      out->push_back(':');
      appendInt(ctx.serverPort(), out);
    }
    appendJsonEscaped(uri, out);
    out->push_back('"');
    appendKey("querystring", out);
    appendQuery(ctx.query(), out);
    appendKey("method", out);
    appendString(ctx.method(), out);
    appendKey("headers", out);
    appendHeaders(d.request_head, /*redact=*/true, out);
    appendKey("size", out);
    appendInt(static_cast<int64_t>(ctx.requestSize()), out);
    if (!d.tls_version.empty()) {
      appendKey("tls", out);
      out->append("{\"version\":");
      appendString(d.tls_version, out);
      out->append(",\"cipher\":");
      appendString(d.tls_cipher, out);
      out->append(",\"client_verify\":\"NONE\"}");
    }
  }
  out->append("},\"upstream_uri\":");
  appendString(d.upstream_target, out);
  out->append(",\"upstream_status\":");
  out->push_back('"');
  if (d.upstream_status > 0) appendInt(d.upstream_status, out);
  out->push_back('"');
  out->append(",\"response\":{\"status\":");
  appendInt(ctx.responseStatus(), out);
  out->append(",\"headers\":");
  appendHeaders(d.response_head, /*redact=*/false, out);
  out->append(",\"size\":");
  appendInt(static_cast<int64_t>(ctx.responseSize()), out);
  const int64_t kong = lat.kong_ms >= 0 ? lat.kong_ms : 0;
  const int64_t request = lat.request_ms >= 0 ? lat.request_ms : 0;
  const int64_t proxy = lat.upstream_ms;  // -1 without an upstream, as Kong
  const int64_t receive = proxy >= 0 && request > kong + proxy ? request - kong - proxy : 0;
  out->append("},\"latencies\":{\"kong\":");
  appendInt(kong, out);
  out->append(",\"proxy\":");
  appendInt(proxy, out);
  out->append(",\"request\":");
  appendInt(request, out);
  out->append(",\"receive\":");
  appendInt(receive, out);
  out->push_back('}');
  if (!d.upstream_ip.empty()) {
    out->append(",\"tries\":[{\"balancer_start\":");
    appendInt(static_cast<int64_t>(lat.started_at_ms) + kong, out);
    out->append(",\"ip\":");
    appendString(d.upstream_ip, out);
    out->append(",\"port\":");
    appendInt(d.upstream_port, out);
    out->append(",\"balancer_latency\":0}]");
  }
  if (!ctx.credentialId().empty()) {
    // Kong reads credential.consumer_id, which its credential rows do not have: only the id.
    out->append(",\"authenticated_entity\":{\"id\":");
    appendString(ctx.credentialId(), out);
    out->push_back('}');
  }
  if (const config::v1::Route* r = ctx.route()) {
    out->append(",\"route\":");
    out->append(cachedEntity(cache_serial, *r, [](const config::v1::Route& m) {
      return config::protoToJson(m);
    }));
  }
  if (const config::v1::Service* s = ctx.service()) {
    out->append(",\"service\":");
    out->append(cachedEntity(cache_serial, *s, [](const config::v1::Service& m) {
      return config::protoToJson(m);
    }));
  }
  if (const Consumer* c = ctx.consumer(); c != nullptr && c->entity != nullptr) {
    out->append(",\"consumer\":");
    out->append(cachedEntity(cache_serial, *c->entity, [](const config::v1::Consumer& m) {
      return config::protoToJson(m);
    }));
  }
  out->append(",\"client_ip\":");
  appendString(ctx.clientIp(), out);
  out->append(",\"started_at\":");
  appendInt(static_cast<int64_t>(lat.started_at_ms), out);
  out->append(",\"source\":");
  appendString(sourceName(ctx.responseSource()), out);
  out->append(",\"workspace\":");
  appendString(kWorkspaceId, out);
  out->append(",\"workspace_name\":");
  appendString(kWorkspaceName, out);
  // correlation-id's kong.log.set_serialize_value("correlation_id", id).
  auto& shared = const_cast<RequestContext&>(ctx).shared();
  if (auto it = shared.find("correlation_id"); it != shared.end()) {
    out->append(",\"correlation_id\":");
    appendString(it->second, out);
  }
  out->push_back('}');
}

}  // namespace portico::dp::plugins::logging
