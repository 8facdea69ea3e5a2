#include "data_plane/plugins/logging/serializer.h"

#include <cstdio>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/config/entities.h"
#include "common/config/kong_json.h"
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
  const int n = std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(v));
  out->append(buf, static_cast<size_t>(n));
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return r;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// name -> values in first-appearance order (a repeated name becomes an array). A value of
// nullopt is a query argument without '=' (Kong: true).
using Groups = std::vector<std::pair<std::string, std::vector<std::optional<std::string>>>>;

void addToGroup(Groups* g, std::string key, std::optional<std::string> value) {
  for (auto& [k, values] : *g) {
    if (k == key) {
      values.push_back(std::move(value));
      return;
    }
  }
  if (g->size() < kMaxPairs) {
    g->emplace_back(std::move(key), std::vector<std::optional<std::string>>{std::move(value)});
  }
}

void appendValue(const std::optional<std::string>& v, std::string* out) {
  if (v) {
    appendString(*v, out);
  } else {
    out->append("true");
  }
}

void appendGroups(const Groups& g, std::string* out) {
  out->push_back('{');
  for (const auto& [key, values] : g) {
    appendKey(key, out);
    if (values.size() == 1) {
      appendValue(values[0], out);
      continue;
    }
    out->push_back('[');
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) out->push_back(',');
      appendValue(values[i], out);
    }
    out->push_back(']');
  }
  out->push_back('}');
}

// The header fields of a head (its first line skipped), names lower-cased.
Groups headerGroups(std::string_view head, bool redact) {
  Groups g;
  size_t eol = head.find('\n');
  while (eol != std::string_view::npos) {
    head.remove_prefix(eol + 1);
    eol = head.find('\n');
    const std::string_view line = head.substr(0, eol);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      continue;  // the blank line ending the head
    }
    std::string name = lower(line.substr(0, colon));
    std::string value(trim(line.substr(colon + 1)));
    if (redact && (name == "authorization" || name == "proxy-authorization")) {
      value = "REDACTED";
    }
    addToGroup(&g, std::move(name), std::move(value));
  }
  if (redact) {
    // Kong replaces the whole entry: a repeated Authorization is one "REDACTED" too.
    for (auto& [k, values] : g) {
      if (k == "authorization" || k == "proxy-authorization") {
        values.resize(1);
      }
    }
  }
  return g;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// ngx_unescape_uri for arguments: '+' is a space, %XX a byte (a malformed escape stays).
std::string unescapeArg(std::string_view s) {
  std::string r;
  r.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      r.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && hexValue(s[i + 1]) >= 0 && hexValue(s[i + 2]) >= 0) {
      r.push_back(static_cast<char>(hexValue(s[i + 1]) * 16 + hexValue(s[i + 2])));
      i += 2;
    } else {
      r.push_back(s[i]);
    }
  }
  return r;
}

Groups queryGroups(std::string_view query) {
  Groups g;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view arg = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    if (arg.empty()) {
      continue;
    }
    const size_t eq = arg.find('=');
    std::string key = unescapeArg(arg.substr(0, eq));
    if (key.empty()) {
      continue;
    }
    if (eq == std::string_view::npos) {
      addToGroup(&g, std::move(key), std::nullopt);
    } else {
      addToGroup(&g, std::move(key), unescapeArg(arg.substr(eq + 1)));
    }
  }
  return g;
}

// Kong's cached rows: no null field, and the workspace id.
std::string entityText(config::Json j) {
  for (auto it = j.begin(); it != j.end();) {
    it = it->is_null() ? j.erase(it) : std::next(it);
  }
  j["ws_id"] = std::string(kWorkspaceId);
  return j.dump(-1, ' ', false, config::Json::error_handler_t::replace);
}

// Each entity's JSON, built once per worker thread. Keyed by the message's address and checked
// against its id, updated_at and size, so a snapshot freed and another allocated at the same
// address is never served a stale text.
template <typename Message, typename Encode>
const std::string& cachedEntity(const Message& m, Encode encode) {
  struct Entry {
    std::string id;
    int64_t updated_at = 0;
    size_t bytes = 0;
    std::string json;
  };
  thread_local absl::flat_hash_map<const void*, Entry> cache;
  const size_t bytes = m.ByteSizeLong();
  auto it = cache.find(&m);
  if (it != cache.end() && it->second.id == m.id() && it->second.updated_at == m.updated_at() &&
      it->second.bytes == bytes) {
    return it->second.json;
  }
  if (cache.size() >= 4096) {
    cache.clear();  // bounded: configs come and go
  }
  Entry& e = cache[&m];
  e.id = m.id();
  e.updated_at = m.updated_at();
  e.bytes = bytes;
  e.json = entityText(encode(m));
  return e.json;
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
  for (char c : in) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
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
        if (u < 0x20 || u == 0x7f) {
          out->append("\\u00");
          out->push_back(kHex[u >> 4]);
          out->push_back(kHex[u & 15]);
        } else {
          out->push_back(c);
        }
    }
  }
}

void serialize(const RequestContext& ctx, std::string* out) {
  RequestContext::LogDetails d;
  ctx.logDetails(&d);
  const Latencies& lat = ctx.latencies();

  // The request target as received (nginx's $request_uri).
  std::string uri;
  std::string_view request_line = d.request_head.substr(0, d.request_head.find('\n'));
  if (const size_t sp = request_line.find(' '); sp != std::string_view::npos) {
    const size_t sp2 = request_line.find(' ', sp + 1);
    const std::string_view target = request_line.substr(sp + 1, sp2 - sp - 1);
    if (!target.empty() && target.front() == '/') {
      uri.assign(target);
    }
  }
  if (uri.empty()) {
    uri.assign(ctx.path());
    if (!ctx.query().empty()) {
      uri.append("?").append(ctx.query());
    }
  }

  out->append("{\"request\":{");
  {
    appendKey("uri", out);
    appendString(uri, out);
    std::string url(ctx.scheme());
    url.append("://").append(lower(hostWithoutPort(ctx.host())));
    if (ctx.serverPort() != 0) {
      url.push_back(':');
      url.append(std::to_string(ctx.serverPort()));
    }
    url.append(uri);
    appendKey("url", out);
    appendString(url, out);
    appendKey("querystring", out);
    appendGroups(queryGroups(ctx.query()), out);
    appendKey("method", out);
    appendString(ctx.method(), out);
    appendKey("headers", out);
    appendGroups(headerGroups(d.request_head, /*redact=*/true), out);
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
  appendString(d.upstream_status > 0 ? std::to_string(d.upstream_status) : std::string(), out);
  out->append(",\"response\":{\"status\":");
  appendInt(ctx.responseStatus(), out);
  out->append(",\"headers\":");
  appendGroups(headerGroups(d.response_head, /*redact=*/false), out);
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
    out->append(cachedEntity(*r, [](const config::v1::Route& m) {
      return config::encodeRoute(m);
    }));
  }
  if (const config::v1::Service* s = ctx.service()) {
    out->append(",\"service\":");
    out->append(cachedEntity(*s, [](const config::v1::Service& m) {
      return config::encodeService(m);
    }));
  }
  if (const Consumer* c = ctx.consumer(); c != nullptr && c->entity != nullptr) {
    out->append(",\"consumer\":");
    out->append(cachedEntity(*c->entity, [](const config::v1::Consumer& m) {
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
