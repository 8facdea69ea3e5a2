// request-transformer: rewrites the upstream request (Kong 3.10, PRIORITY 801, access phase).
//
// Kong's order: replace.uri, http_method (GET/HEAD/TRACE moves a form body into the query),
// then headers, body, querystring, each remove -> rename -> replace -> add -> append.
// Everything is computed first and applied at the end, so a request that must stop (500, or
// the body still on the wire) leaves the upstream request untouched. Templates read the
// request as Kong's lazy template environment does: a source is captured the first time a
// template reads it (so the original headers when a header template reads them).
#include <algorithm>
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
#include "data_plane/plugins/plugin.h"
#include "data_plane/plugins/request_transformer/template.h"

namespace portico::dp::plugins::request_transformer {
namespace {

using config::Json;

// ngx.decode_args / kong.request.get_query read at most 100 arguments (lua_max_uri_args and
// lua_max_post_args default to 100); the rest is dropped when the args are re-encoded.
constexpr size_t kMaxArgs = 100;

// ---------------------------------------------------------------------------------------------
// Config

struct Entry {
  std::string name;           // empty: Kong's pattern found no name (Lua error at run time)
  Template value;
  bool has_value = false;     // Kong's iter gives no value for an empty one
};
struct EntryList {
  std::vector<Entry> entries;
  bool nameless = false;      // an entry without a name: Kong raises an error iterating it
  bool empty() const { return entries.empty(); }
};
struct Ops {
  EntryList remove, rename, replace, add, append;
  bool any() const {
    return !remove.empty() || !rename.empty() || !replace.empty() || !add.empty() ||
           !append.empty();
  }
};

class Config final : public PluginConfig {
 public:
  std::string_view name() const override { return "request-transformer"; }
  int32_t priority() const override { return 801; }
  PluginPtr createPlugin() const override;

  std::optional<std::string> http_method;
  std::optional<Template> uri;
  Ops headers, query, body;
};

// ---------------------------------------------------------------------------------------------
// Values: Kong's Lua tables of strings, `true` (a flag argument) and lists.

struct Value {
  std::vector<std::string> items;  // one item = a scalar; several (or is_list) = a list
  bool is_list = false;
  bool flag = false;               // `true` (an argument without '=')
};

Value scalar(std::string s) {
  Value v;
  v.items.push_back(std::move(s));
  return v;
}

// append_value: a string becomes {old, new}, a list grows, anything else becomes {new}.
void appendValue(Value* v, bool exists, std::string item) {
  if (!exists || v->flag) {
    *v = Value{};
  }
  v->is_list = true;
  v->items.push_back(std::move(item));
}

struct Arg {
  std::string key;
  Value value;
};
using Args = std::vector<Arg>;  // ordered as received

Arg* findArg(Args& a, std::string_view key) {
  for (Arg& x : a) {
    if (x.key == key) return &x;
  }
  return nullptr;
}
void eraseArg(Args& a, std::string_view key) {
  a.erase(std::remove_if(a.begin(), a.end(), [&](const Arg& x) { return x.key == key; }),
          a.end());
}
void setArg(Args& a, std::string_view key, Value v) {
  if (Arg* x = findArg(a, key)) {
    x->value = std::move(v);
  } else {
    a.push_back(Arg{std::string(key), std::move(v)});
  }
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// ngx_unescape_uri for args: '+' is a space, a bad %XX stays as it is.
std::string unescapeArg(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < in.size() && hexValue(in[i + 1]) >= 0 &&
               hexValue(in[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hexValue(in[i + 1]) * 16 + hexValue(in[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// ngx.decode_args: `k=v` strings, `k` flags (true), repeated keys as lists, empty keys skipped.
Args decodeArgs(std::string_view s) {
  Args out;
  size_t count = 0;
  while (!s.empty() && count < kMaxArgs) {
    const size_t amp = s.find('&');
    std::string_view seg = s.substr(0, amp);
    s = amp == std::string_view::npos ? std::string_view() : s.substr(amp + 1);
    if (seg.empty()) {
      continue;
    }
    const size_t eq = seg.find('=');
    if (eq == 0) {
      continue;
    }
    ++count;
    std::string key = unescapeArg(seg.substr(0, eq));
    Value v;
    if (eq == std::string_view::npos) {
      v.flag = true;
    } else {
      v.items.push_back(unescapeArg(seg.substr(eq + 1)));
    }
    if (Arg* x = findArg(out, key)) {
      // A repeated key becomes a list; flags in a list stay `true` elements (rendered bare).
      if (!x->value.is_list) {
        Value list;
        list.is_list = true;
        list.items.push_back(x->value.flag ? std::string() : x->value.items[0]);
        x->value = std::move(list);
      }
      x->value.items.push_back(v.flag ? std::string() : v.items[0]);
    } else {
      out.push_back(Arg{std::move(key), std::move(v)});
    }
  }
  return out;
}

// ngx.escape_uri (URI component): everything but alphanumerics and -._~ is %XX-encoded.
void escapeArg(std::string_view in, std::string* out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : in) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (keep) {
      out->push_back(static_cast<char>(c));
    } else {
      out->push_back('%');
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    }
  }
}

// ngx.encode_args of one key: "k=v", "k" for a flag, "k=v1&k=v2" for a list.
std::string encodeArg(const Arg& a) {
  std::string out;
  if (a.value.flag) {
    escapeArg(a.key, &out);
    return out;
  }
  for (const std::string& item : a.value.items) {
    if (!out.empty()) out.push_back('&');
    escapeArg(a.key, &out);
    out.push_back('=');
    escapeArg(item, &out);
  }
  return out;
}

// kong.service.request.set_query: each key's encoding, sorted, joined by '&'.
std::string encodeQuerySorted(const Args& args) {
  std::vector<std::string> parts;
  parts.reserve(args.size());
  for (const Arg& a : args) parts.push_back(encodeArg(a));
  std::sort(parts.begin(), parts.end());
  std::string out;
  for (const std::string& p : parts) {
    if (!out.empty()) out.push_back('&');
    out.append(p);
  }
  return out;
}

std::string encodeArgsInOrder(const Args& args) {
  std::string out;
  for (const Arg& a : args) {
    std::string p = encodeArg(a);
    if (p.empty()) continue;
    if (!out.empty()) out.push_back('&');
    out.append(p);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Headers: Kong's get_headers() table, names compared case-insensitively.

struct HeaderEntry {
  std::string key;
  Value value;
};
using Headers = std::vector<HeaderEntry>;

HeaderEntry* findHeader(Headers& h, std::string_view name) {
  for (HeaderEntry& e : h) {
    if (http::equalsIgnoreCase(e.key, name)) return &e;
  }
  return nullptr;
}
void eraseHeader(Headers& h, std::string_view name) {
  h.erase(std::remove_if(h.begin(), h.end(),
                         [&](const HeaderEntry& e) { return http::equalsIgnoreCase(e.key, name); }),
          h.end());
}
std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Multipart (the lua-multipart library Kong uses): parts with their header lines and value.

struct Part {
  std::string name;
  std::vector<std::string> headers;
  std::string value;
};

// `;%s*boundary=(%S+)`, quotes removed.
std::optional<std::string> multipartBoundary(std::string_view content_type) {
  size_t pos = 0;
  while ((pos = content_type.find(';', pos)) != std::string_view::npos) {
    size_t i = pos + 1;
    while (i < content_type.size() && (content_type[i] == ' ' || content_type[i] == '\t')) ++i;
    if (content_type.substr(i, 9) == "boundary=") {
      i += 9;
      size_t end = i;
      while (end < content_type.size() && content_type[end] != ' ' && content_type[end] != '\t') {
        ++end;
      }
      std::string_view b = content_type.substr(i, end - i);
      if (b.size() >= 2 && (b.front() == '"' || b.front() == '\'') && b.back() == b.front()) {
        b = b.substr(1, b.size() - 2);
      }
      if (b.empty()) return std::nullopt;
      return std::string(b);
    }
    pos = i;
  }
  return std::nullopt;
}

// The part's name: the Content-Disposition parameter `name=` with its quotes removed.
std::string partName(std::string_view disposition) {
  size_t pos = 0;
  while (pos <= disposition.size()) {
    const size_t semi = disposition.find(';', pos);
    std::string_view param = disposition.substr(pos, semi == std::string_view::npos
                                                         ? std::string_view::npos
                                                         : semi - pos);
    while (!param.empty() && (param.front() == ' ' || param.front() == '\t')) param.remove_prefix(1);
    if (param.size() > 5 && http::equalsIgnoreCase(param.substr(0, 5), "name=")) {
      std::string_view v = param.substr(5);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      if (v.size() >= 2) return std::string(v.substr(1, v.size() - 2));
      return "";
    }
    if (semi == std::string_view::npos) break;
    pos = semi + 1;
  }
  return "";
}

// Parts in body order; a part without a name is dropped (as lua-multipart does).
std::vector<Part> decodeMultipart(std::string_view body, const std::string& boundary) {
  std::vector<Part> parts;
  const std::string delim = "--" + boundary;
  size_t pos = body.find(delim);
  while (pos != std::string_view::npos) {
    size_t line_end = body.find('\n', pos);
    if (line_end == std::string_view::npos) break;
    const size_t start = line_end + 1;
    // The next delimiter at the start of a line.
    size_t next = start;
    for (;;) {
      next = body.find(delim, next);
      if (next == std::string_view::npos || next == 0 || body[next - 1] == '\n') break;
      next += delim.size();
    }
    std::string_view chunk =
        body.substr(start, next == std::string_view::npos ? std::string_view::npos : next - start);
    Part p;
    size_t i = 0;
    for (;;) {
      const size_t eol = chunk.find('\n', i);
      if (eol == std::string_view::npos) {
        i = chunk.size();
        break;
      }
      std::string_view line = chunk.substr(i, eol - i);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      i = eol + 1;
      if (line.empty()) break;
      if (line.size() >= 19 && http::equalsIgnoreCase(line.substr(0, 19), "content-disposition")) {
        p.name = partName(line);
      }
      p.headers.emplace_back(line);
    }
    std::string_view value = chunk.substr(std::min(i, chunk.size()));
    if (!value.empty() && value.back() == '\n') value.remove_suffix(1);
    if (!value.empty() && value.back() == '\r') value.remove_suffix(1);
    p.value.assign(value);
    if (!p.name.empty() && next != std::string_view::npos) {
      parts.push_back(std::move(p));
    }
    pos = next;
  }
  return parts;
}

std::string encodeMultipart(const std::vector<Part>& parts, const std::string& boundary) {
  if (parts.empty()) return "";
  std::string out;
  for (const Part& p : parts) {
    out.append("--").append(boundary).append("\r\n");
    for (const std::string& h : p.headers) out.append(h).append("\r\n");
    out.append("\r\n").append(p.value).append("\r\n");
  }
  out.append("--").append(boundary).append("--\r\n");
  return out;
}

Part* findPart(std::vector<Part>& parts, std::string_view name) {
  for (Part& p : parts) {
    if (p.name == name) return &p;
  }
  return nullptr;
}
void deleteParts(std::vector<Part>& parts, std::string_view name) {
  parts.erase(std::remove_if(parts.begin(), parts.end(),
                             [&](const Part& p) { return p.name == name; }),
              parts.end());
}
// set_simple: replaces the first part of that name, or adds one at the end.
void setSimple(std::vector<Part>& parts, const std::string& name, std::string value) {
  Part simple;
  simple.name = name;
  std::string h = "Content-Disposition: form-data; name=\"";
  h.append(name).append("\"");
  simple.headers.push_back(std::move(h));
  simple.value = std::move(value);
  if (Part* p = findPart(parts, name)) {
    *p = std::move(simple);
  } else {
    parts.push_back(std::move(simple));
  }
}

// ---------------------------------------------------------------------------------------------
// JSON bodies (cjson): truthiness is Lua's (false and absent are false, null is true).

bool truthy(const Json& doc, const std::string& key) {
  auto it = doc.find(key);
  return it != doc.end() && !(it->is_boolean() && !it->get<bool>());
}

void appendJson(Json* slot, bool exists, std::string item) {
  if (exists && slot->is_string()) {
    Json list = Json::array({*slot, item});
    *slot = std::move(list);
  } else if (exists && slot->is_array()) {
    slot->push_back(std::move(item));
  } else if (exists && slot->is_object()) {
    (*slot)["1"] = std::move(item);  // table.insert on a hash table: key 1
  } else {
    *slot = Json::array({std::move(item)});
  }
}

enum class BodyType : uint8_t { kNone, kJson, kMultipart, kForm };

BodyType bodyType(std::string_view content_type) {
  const std::string ct = lower(content_type);
  if (ct.find("application/json") != std::string::npos) return BodyType::kJson;
  if (ct.find("multipart/form-data") != std::string::npos) return BodyType::kMultipart;
  if (ct.find("application/x-www-form-urlencoded") != std::string::npos) return BodyType::kForm;
  return BodyType::kNone;
}

// kong.tools.uri.escape, applied by set_path.
std::string escapePath(std::string_view path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : path) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      std::string_view("!#$&'()*+,/:;=?@[]-_.~%").find(static_cast<char>(c)) !=
                          std::string_view::npos;
    if (keep) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

bool acceptedMethod(std::string_view m) {
  static constexpr std::string_view kMethods[] = {
      "GET",      "HEAD",      "PUT",  "POST",   "DELETE", "OPTIONS", "MKCOL", "COPY",
      "MOVE",     "PROPFIND",  "PROPPATCH", "LOCK", "UNLOCK", "PATCH", "TRACE"};
  return std::find(std::begin(kMethods), std::end(kMethods), m) != std::end(kMethods);
}

// ---------------------------------------------------------------------------------------------
// One request.

class Run {
 public:
  enum class Result : uint8_t { kDone, kNeedBody, kError };

  Run(RequestContext& ctx, const Config& c) : ctx_(ctx), c_(c) {}

  Result run() {
    std::vector<std::pair<std::string, std::string>> raw;
    ctx_.upstreamHeaders(&raw);
    for (auto& [name, value] : raw) {
      std::string key = lower(name);
      if (HeaderEntry* e = findHeader(initial_, key)) {
        if (!e->value.is_list) e->value.is_list = true;
        e->value.items.push_back(std::move(value));
      } else {
        initial_.push_back(HeaderEntry{std::move(key), scalar(std::move(value))});
      }
    }
    committed_headers_ = &initial_;
    query_ = decodeArgs(ctx_.upstreamQuery());
    query_text_ = std::string(ctx_.upstreamQuery());
    if (const HeaderEntry* ct = findHeader(initial_, "content-type")) {
      content_type_ = ct->value.items.empty() ? "" : ct->value.items[0];
    }

    // 1. replace.uri
    if (c_.uri) {
      std::string path = render(*c_.uri);
      if (path.empty() || path.front() != '/') return Result::kError;  // set_path refuses it
      path_ = escapePath(path);
    }
    // 2. http_method
    if (c_.http_method) {
      if (!acceptedMethod(*c_.http_method)) return Result::kError;
      const std::string& m = *c_.http_method;
      if ((m == "GET" || m == "HEAD" || m == "TRACE") && bodyType(content_type_) == BodyType::kForm) {
        std::string_view body;
        if (!readBody(&body)) return Result::kNeedBody;
        Args form = decodeArgs(body);
        if (!form.empty()) {
          for (Arg& a : form) {
            Arg* q = findArg(query_, a.key);
            if (q == nullptr) {
              query_.push_back(std::move(a));
              continue;
            }
            const bool was_list = q->value.is_list;
            if (!was_list) {
              appendValue(&q->value, true, q->value.flag ? std::string() : q->value.items[0]);
            }
            for (std::string& item : a.value.items) q->value.items.push_back(std::move(item));
          }
          query_text_ = encodeArgsInOrder(query_);
          query_set_ = true;
        }
      }
    }
    // 3. headers, body, querystring
    if (!transformHeaders()) return Result::kError;
    const Result b = transformBody();
    if (b != Result::kDone) return b;
    if (!transformQuery()) return Result::kError;
    return Result::kDone;
  }

  void apply() {
    if (path_) ctx_.setUpstreamPath(std::move(*path_));
    if (c_.http_method) ctx_.setUpstreamMethod(*c_.http_method);
    if (headers_changed_) {
      for (const std::string& name : cleared_) {
        if (findHeader(final_, name) == nullptr) ctx_.removeUpstreamHeader(name);
      }
      for (const HeaderEntry& e : final_) {
        const HeaderEntry* before = findHeader(initial_, e.key);
        const bool same = before != nullptr && before->value.items == e.value.items &&
                          before->key == e.key;
        const bool was_cleared = std::find_if(cleared_.begin(), cleared_.end(), [&](const std::string& n) {
                                   return http::equalsIgnoreCase(n, e.key);
                                 }) != cleared_.end();
        if (same && !was_cleared) continue;
        if (e.value.items.empty()) {
          ctx_.removeUpstreamHeader(e.key);
          continue;
        }
        ctx_.setUpstreamHeader(e.key, e.value.items[0]);
        for (size_t i = 1; i < e.value.items.size(); ++i) {
          ctx_.addUpstreamHeader(e.key, e.value.items[i]);
        }
      }
    }
    if (new_body_) ctx_.setUpstreamBody(std::move(*new_body_));
    if (query_set_) ctx_.setUpstreamQuery(std::move(query_text_));
  }

 private:
  // The body as Kong's get_raw_body() gives it ("" when there is none); false while it is
  // still on the wire.
  bool readBody(std::string_view* body) {
    if (ctx_.bufferedBody(body)) return true;
    if (ctx_.requestBodyPending()) return false;
    *body = {};
    return true;
  }

  // ---- Templates (Kong's lazily loaded environment).
  std::string render(const Template& t) {
    std::string out;
    for (const TemplatePart& p : t.parts) {
      if (p.literal) {
        out.append(p.text);
        continue;
      }
      switch (p.source) {
        case Source::kHeaders: {
          if (!env_headers_) env_headers_ = *committed_headers_;
          const HeaderEntry* e = findHeader(*env_headers_, p.text);
          if (e == nullptr && p.text.find('_') != std::string::npos) {
            // ngx.req.get_headers()'s metatable: `x_foo` also finds x-foo.
            std::string dashed = p.text;
            std::replace(dashed.begin(), dashed.end(), '_', '-');
            e = findHeader(*env_headers_, dashed);
          }
          if (e != nullptr && !p.numeric) appendItems(e->value, &out);
          break;
        }
        case Source::kQueryParams: {
          if (!env_query_) env_query_ = query_;
          const Arg* a = findArg(*env_query_, p.text);
          if (a != nullptr && !p.numeric) appendItems(a->value, &out);
          break;
        }
        case Source::kUriCaptures: {
          std::string_view v;
          if (ctx_.uriCapture(p.text, p.numeric, &v)) out.append(v);
          break;
        }
        case Source::kShared: {
          if (p.numeric) break;
          auto& shared = ctx_.shared();
          auto it = shared.find(p.text);
          if (it != shared.end()) out.append(it->second);
          break;
        }
      }
    }
    return out;
  }
  // A Lua value rendered by tostring(): `true` for a flag. A list (repeated header or
  // argument) would render as Lua's "table: 0x..."; its values joined by ", " are used instead.
  static void appendItems(const Value& v, std::string* out) {
    if (v.flag) {
      out->append("true");
      return;
    }
    for (size_t i = 0; i < v.items.size(); ++i) {
      if (i > 0) out->append(", ");
      out->append(v.items[i]);
    }
  }

  // ---- Headers.
  bool transformHeaders() {
    const Ops& o = c_.headers;
    if (!o.any()) return true;
    Headers h = initial_;
    eraseHeader(h, "host");
    for (const Entry& e : o.remove.entries) {
      if (findHeader(h, e.name) != nullptr) {
        eraseHeader(h, e.name);
        cleared_.push_back(lower(e.name));
      }
    }
    for (const Entry& e : o.rename.entries) {
      const std::string to = e.has_value ? render(e.value) : std::string();
      if (e.name == to) continue;
      HeaderEntry* from = findHeader(h, e.name);
      if (from == nullptr) continue;
      const bool case_only = http::equalsIgnoreCase(e.name, to);
      Value v = from->value;
      eraseHeader(h, e.name);
      if (!case_only) eraseHeader(h, to);
      h.push_back(HeaderEntry{case_only ? to : lower(to), std::move(v)});
      cleared_.push_back(e.name);
    }
    for (const Entry& e : o.replace.entries) {
      const std::string name = lower(e.name);
      const bool host = name == "host";
      HeaderEntry* x = findHeader(h, name);
      if (x == nullptr && !host) continue;
      if (!e.has_value) {  // headers[name] = nil: no longer set by this plugin
        eraseHeader(h, name);
        continue;
      }
      std::string v = render(e.value);
      if (x != nullptr) {
        x->value = scalar(std::move(v));
      } else {
        h.push_back(HeaderEntry{name, scalar(std::move(v))});
      }
    }
    for (const Entry& e : o.add.entries) {
      if (findHeader(h, e.name) != nullptr || http::equalsIgnoreCase(e.name, "host") ||
          !e.has_value) {
        continue;
      }
      h.push_back(HeaderEntry{e.name, scalar(render(e.value))});
    }
    for (const Entry& e : o.append.entries) {
      if (!e.has_value) continue;
      if (http::equalsIgnoreCase(e.name, "host")) return false;  // a list as upstream_host: error
      HeaderEntry* x = findHeader(h, e.name);
      std::string v = render(e.value);
      if (x == nullptr) {
        h.push_back(HeaderEntry{e.name, Value{}});
        x = &h.back();
        appendValue(&x->value, false, std::move(v));
      } else {
        if (x->key != e.name && lower(e.name) != e.name) x->key = e.name;  // the configured case
        appendValue(&x->value, true, std::move(v));
      }
    }
    // Host is set through upstream_host when replaced; the client's Host otherwise stays.
    final_ = std::move(h);
    headers_changed_ = true;
    committed_final_ = final_;
    if (const HeaderEntry* host = findHeader(initial_, "host")) {
      if (findHeader(committed_final_, "host") == nullptr) committed_final_.push_back(*host);
    }
    committed_headers_ = &committed_final_;
    if (const HeaderEntry* ct = findHeader(committed_final_, "content-type")) {
      content_type_ = ct->value.items.empty() ? "" : ct->value.items[0];
    } else {
      content_type_.clear();
    }
    return true;
  }

  // ---- Body.
  Result transformBody() {
    const Ops& o = c_.body;
    const BodyType type = bodyType(content_type_);
    if (type == BodyType::kNone || !o.any()) return Result::kDone;
    std::string_view body;
    if (!readBody(&body)) return Result::kNeedBody;
    const bool non_empty = !body.empty();
    std::optional<std::string> out;
    switch (type) {
      case BodyType::kJson: {
        if (!transformJson(body, non_empty, &out)) return Result::kError;
        break;
      }
      case BodyType::kForm: {
        if (!transformForm(body, non_empty, &out)) return Result::kError;
        break;
      }
      case BodyType::kMultipart: {
        if (!transformMultipart(body, non_empty, &out)) return Result::kError;
        break;
      }
      case BodyType::kNone:
        break;
    }
    if (out) {
      // kong.service.request.set_header("Content-Length", #body); set by the proxy itself.
      if (HeaderEntry* cl = findHeader(committed_final_, "content-length")) {
        cl->value = scalar(std::to_string(out->size()));
      }
      new_body_ = std::move(out);
    }
    return Result::kDone;
  }

  bool transformJson(std::string_view body, bool non_empty, std::optional<std::string>* out) {
    const Ops& o = c_.body;
    Json doc = Json::object();
    if (non_empty) {
      std::optional<Json> parsed = config::parseUntrustedJson(body);
      if (!parsed) return true;  // malformed: passed through unchanged
      doc = std::move(*parsed);
    }
    if (doc.is_array()) {
      // cjson encodes an array as its elements only: named keys never show. Any operation
      // re-encodes the same array.
      *out = doc.dump(-1, ' ', false, Json::error_handler_t::replace);
      return true;
    }
    if (!doc.is_object()) return false;  // indexing a Lua string/number/null: error
    bool changed = false;
    if (non_empty && !o.remove.empty()) {
      if (o.remove.nameless) return false;
      for (const Entry& e : o.remove.entries) {
        doc.erase(e.name);
        changed = true;
      }
    }
    if (non_empty && !o.rename.empty()) {
      for (const Entry& e : o.rename.entries) {
        const std::string to = render(e.value);
        if (e.name == to || !truthy(doc, e.name)) continue;
        Json v = doc[e.name];
        doc.erase(e.name);
        doc[to] = std::move(v);
        changed = true;
      }
    }
    if (non_empty && !o.replace.empty()) {
      for (const Entry& e : o.replace.entries) {
        if (!truthy(doc, e.name)) continue;
        doc[e.name] = render(e.value);
        changed = true;
      }
    }
    for (const Entry& e : o.add.entries) {
      if (truthy(doc, e.name)) continue;
      doc[e.name] = render(e.value);
      changed = true;
    }
    for (const Entry& e : o.append.entries) {
      const bool exists = doc.contains(e.name);
      appendJson(&doc[e.name], exists, render(e.value));
      changed = true;
    }
    if (changed) *out = doc.dump(-1, ' ', false, Json::error_handler_t::replace);
    return true;
  }

  bool transformForm(std::string_view body, bool non_empty, std::optional<std::string>* out) {
    const Ops& o = c_.body;
    Args args = decodeArgs(body);
    bool changed = false;
    if (non_empty && !o.remove.empty()) {
      if (o.remove.nameless) return false;
      for (const Entry& e : o.remove.entries) {
        eraseArg(args, e.name);
        changed = true;
      }
    }
    if (non_empty) {
      for (const Entry& e : o.rename.entries) {
        const std::string to = render(e.value);
        Arg* a = findArg(args, e.name);
        if (e.name == to || a == nullptr) continue;
        Value v = std::move(a->value);
        eraseArg(args, e.name);
        setArg(args, to, std::move(v));
        changed = true;
      }
      for (const Entry& e : o.replace.entries) {
        if (Arg* a = findArg(args, e.name)) {
          a->value = scalar(render(e.value));
          changed = true;
        }
      }
    }
    for (const Entry& e : o.add.entries) {
      if (findArg(args, e.name) == nullptr) {
        args.push_back(Arg{e.name, scalar(render(e.value))});
        changed = true;
      }
    }
    for (const Entry& e : o.append.entries) {
      Arg* a = findArg(args, e.name);
      std::string v = render(e.value);
      if (a == nullptr) {
        args.push_back(Arg{e.name, Value{}});
        appendValue(&args.back().value, false, std::move(v));
      } else {
        appendValue(&a->value, true, std::move(v));
      }
      changed = true;
    }
    if (changed) *out = encodeArgsInOrder(args);
    return true;
  }

  // lua-multipart: rename, remove, replace, add (in that order); append is not applied.
  bool transformMultipart(std::string_view body, bool non_empty, std::optional<std::string>* out) {
    const Ops& o = c_.body;
    std::optional<std::string> boundary = multipartBoundary(content_type_);
    if (!boundary) return true;  // nothing to parse or to write back: left unchanged
    std::vector<Part> parts = decodeMultipart(body, *boundary);
    bool changed = false;
    if (non_empty) {
      for (const Entry& e : o.rename.entries) {
        const std::string to = render(e.value);
        Part* p = findPart(parts, e.name);
        if (p == nullptr || e.name == to) continue;
        std::string v = p->value;
        setSimple(parts, to, std::move(v));
        deleteParts(parts, e.name);
        changed = true;
      }
      if (!o.remove.empty()) {
        if (o.remove.nameless) return false;
        for (const Entry& e : o.remove.entries) {
          deleteParts(parts, e.name);
          changed = true;
        }
      }
      for (const Entry& e : o.replace.entries) {
        if (findPart(parts, e.name) == nullptr) continue;
        deleteParts(parts, e.name);
        setSimple(parts, e.name, render(e.value));
        changed = true;
      }
    }
    for (const Entry& e : o.add.entries) {
      if (findPart(parts, e.name) != nullptr) continue;
      setSimple(parts, e.name, render(e.value));
      changed = true;
    }
    if (changed) *out = encodeMultipart(parts, *boundary);
    return true;
  }

  // ---- Query string.
  bool transformQuery() {
    const Ops& o = c_.query;
    if (!o.any()) return true;
    if (!env_query_) env_query_ = query_;  // Kong starts from template_env.query_params
    Args q = *env_query_;
    if (o.remove.nameless) return false;
    for (const Entry& e : o.remove.entries) eraseArg(q, e.name);
    for (const Entry& e : o.rename.entries) {
      const std::string to = render(e.value);
      Arg* a = findArg(q, e.name);
      if (e.name == to || a == nullptr) continue;
      Value v = std::move(a->value);
      eraseArg(q, e.name);
      setArg(q, to, std::move(v));
    }
    for (const Entry& e : o.replace.entries) {
      if (Arg* a = findArg(q, e.name)) a->value = scalar(render(e.value));
    }
    for (const Entry& e : o.add.entries) {
      if (findArg(q, e.name) == nullptr) q.push_back(Arg{e.name, scalar(render(e.value))});
    }
    for (const Entry& e : o.append.entries) {
      Arg* a = findArg(q, e.name);
      std::string v = render(e.value);
      if (a == nullptr) {
        q.push_back(Arg{e.name, Value{}});
        appendValue(&q.back().value, false, std::move(v));
      } else {
        appendValue(&a->value, true, std::move(v));
      }
    }
    query_text_ = encodeQuerySorted(q);
    query_set_ = true;
    return true;
  }

  RequestContext& ctx_;
  const Config& c_;
  Headers initial_;
  Headers final_;
  Headers committed_final_;
  const Headers* committed_headers_ = nullptr;
  std::vector<std::string> cleared_;
  bool headers_changed_ = false;
  std::string content_type_;
  Args query_;
  std::string query_text_;
  bool query_set_ = false;
  std::optional<Headers> env_headers_;
  std::optional<Args> env_query_;
  std::optional<std::string> path_;
  std::optional<std::string> new_body_;
};

class RequestTransformer final : public Plugin {
 public:
  explicit RequestTransformer(const Config& c) : c_(c) {}
  PhaseResult onRequest(RequestContext& ctx) override {
    Run run(ctx, c_);
    switch (run.run()) {
      case Run::Result::kNeedBody:
        return PhaseResult::kNeedRequestBody;
      case Run::Result::kError:
        ctx.sendLocalReply(500, RequestContext::kUnexpected);
        return PhaseResult::kStop;
      case Run::Result::kDone:
        break;
    }
    run.apply();
    return PhaseResult::kContinue;
  }

 private:
  const Config& c_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<RequestTransformer>(*this); }

absl::Status parseList(const Json& conf, const char* op, const char* target, EntryList* out) {
  if (!conf.contains(op) || !conf[op].is_object()) return absl::OkStatus();
  const Json& rec = conf[op];
  if (!rec.contains(target) || !rec[target].is_array()) return absl::OkStatus();
  for (const Json& item : rec[target]) {
    if (!item.is_string()) continue;
    const std::string s = item.get<std::string>();
    std::string_view name, value;
    Entry e;
    if (!config::splitNameValue(s, &name, &value)) {
      out->nameless = true;
      continue;
    }
    e.name.assign(name);
    e.has_value = !value.empty();
    if (e.has_value) {
      const std::string why = parseTemplate(value, &e.value);
      if (!why.empty()) {
        std::string msg = "config.";
        msg.append(op).append(".").append(target).append(": ").append(templateCheck(value));
        return absl::InvalidArgumentError(msg);
      }
    }
    out->entries.push_back(std::move(e));
  }
  return absl::OkStatus();
}

absl::Status parseOps(const Json& conf, const char* target, Ops* ops) {
  for (auto [op, list] : {std::pair{"remove", &ops->remove}, std::pair{"rename", &ops->rename},
                          std::pair{"replace", &ops->replace}, std::pair{"add", &ops->add},
                          std::pair{"append", &ops->append}}) {
    absl::Status s = parseList(conf, op, target, list);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&, const Json& conf) {
  auto c = std::make_shared<Config>();
  if (conf.contains("http_method") && conf["http_method"].is_string()) {
    c->http_method = conf["http_method"].get<std::string>();
  }
  if (conf.contains("replace") && conf["replace"].is_object() && conf["replace"].contains("uri") &&
      conf["replace"]["uri"].is_string()) {
    const std::string uri = conf["replace"]["uri"].get<std::string>();
    Template t;
    if (!parseTemplate(uri, &t).empty()) {
      return absl::InvalidArgumentError("config.replace.uri: " + templateCheck(uri));
    }
    c->uri = std::move(t);
  }
  for (auto [target, ops] : {std::pair{"headers", &c->headers}, std::pair{"querystring", &c->query},
                             std::pair{"body", &c->body}}) {
    absl::Status s = parseOps(conf, target, ops);
    if (!s.ok()) return s;
  }
  return PluginConfigConstSharedPtr(std::move(c));
}

}  // namespace portico::dp::plugins::request_transformer
