#include "common/http/http_parser.h"

#include <cstring>

namespace portico::http {

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

namespace {

// Character classes, one lookup per byte on the hot path.
enum : uint8_t {
  kTchar = 1,   // RFC 9110 token
  kVchar = 2,   // field-value octet: VCHAR / obs-text / SP / HTAB
  kTarget = 4,  // request-target octet: VCHAR / obs-text (no SP, no CTL)
};

constexpr std::array<uint8_t, 256> makeTable() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t v = 0;
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (alnum || (c != 0 && std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                                std::string_view::npos)) {
      v |= kTchar;
    }
    if ((c >= 0x21 && c <= 0x7e) || c >= 0x80 || c == ' ' || c == '\t') {
      v |= kVchar;
    }
    if ((c >= 0x21 && c <= 0x7e) || c >= 0x80) {
      v |= kTarget;
    }
    t[c] = v;
  }
  return t;
}
constexpr std::array<uint8_t, 256> kTable = makeTable();

inline bool is(char c, uint8_t cls) { return (kTable[static_cast<uint8_t>(c)] & cls) != 0; }

inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Parses 1*DIGIT into *out; rejects signs, spaces, empty and overflow (> 2^63).
bool parseDecimal(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 18) {
    return false;
  }
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

// Calls f(token) for each comma-separated, OWS-trimmed, non-empty list element.
template <class F>
void forEachToken(std::string_view v, F&& f) {
  while (!v.empty()) {
    size_t comma = v.find(',');
    std::string_view tok = trimOws(v.substr(0, comma));
    if (!tok.empty()) {
      f(tok);
    }
    if (comma == std::string_view::npos) {
      break;
    }
    v.remove_prefix(comma + 1);
  }
}

// Parses the header block [p, end) (which ends with the final empty line's CRLF).
// Returns kNone or the error.
ParseError parseFields(const char* p, const char* end, const Limits& limits, MessageHead* out) {
  out->num_headers = 0;
  const uint32_t max_headers = limits.max_headers < kMaxHeaders ? limits.max_headers : kMaxHeaders;
  for (;;) {
    if (p >= end) {
      return ParseError::kBadRequest;
    }
    if (*p == '\r') {  // empty line: end of head
      return (p + 1 < end && p[1] == '\n') ? ParseError::kNone : ParseError::kBadRequest;
    }
    if (*p == ' ' || *p == '\t') {
      return ParseError::kBadRequest;  // obs-fold (RFC 9112 §5.2: reject in requests)
    }
    const char* name_begin = p;
    while (p < end && is(*p, kTchar)) {
      ++p;
    }
    if (p == name_begin || p >= end || *p != ':') {
      return ParseError::kBadRequest;  // empty name, bad char, or whitespace before ':'
    }
    std::string_view name(name_begin, static_cast<size_t>(p - name_begin));
    ++p;
    while (p < end && (*p == ' ' || *p == '\t')) {
      ++p;
    }
    const char* value_begin = p;
    while (p < end && is(*p, kVchar)) {
      ++p;
    }
    if (p + 1 >= end || p[0] != '\r' || p[1] != '\n') {
      return ParseError::kBadRequest;  // NUL, bare CR/LF or other CTL in the value
    }
    const char* value_end = p;
    while (value_end > value_begin && (value_end[-1] == ' ' || value_end[-1] == '\t')) {
      --value_end;
    }
    p += 2;
    if (out->num_headers >= max_headers) {
      return ParseError::kHeaderTooLarge;
    }
    out->headers[out->num_headers++] =
        Header{name, std::string_view(value_begin, static_cast<size_t>(value_end - value_begin))};
  }
}

// Connection, Content-Length and Transfer-Encoding, common to both directions.
ParseError applyFraming(MessageHead* h, bool is_request) {
  bool seen_cl = false;
  bool seen_te = false;
  bool chunked = false;
  bool te_other = false;
  bool conn_close = false;
  bool conn_keep_alive = false;
  for (uint32_t i = 0; i < h->num_headers; ++i) {
    const Header& f = h->headers[i];
    switch (f.name.size()) {
      case 10:
        if (equalsIgnoreCase(f.name, "connection")) {
          forEachToken(f.value, [&](std::string_view tok) {
            if (equalsIgnoreCase(tok, "close")) {
              conn_close = true;
            } else if (equalsIgnoreCase(tok, "keep-alive")) {
              conn_keep_alive = true;
            } else if (equalsIgnoreCase(tok, "upgrade")) {
              h->connection_upgrade = true;
            }
          });
        }
        break;
      case 14:
        if (equalsIgnoreCase(f.name, "content-length")) {
          // Duplicates are rejected even when equal: two agents could pick different ones.
          if (seen_cl || !parseDecimal(f.value, &h->content_length)) {
            return ParseError::kBadRequest;
          }
          seen_cl = true;
        }
        break;
      case 17:
        if (equalsIgnoreCase(f.name, "transfer-encoding")) {
          if (seen_te) {
            return ParseError::kBadRequest;
          }
          seen_te = true;
          int n = 0;
          forEachToken(f.value, [&](std::string_view tok) {
            ++n;
            if (equalsIgnoreCase(tok, "chunked") && n == 1) {
              chunked = true;
            } else {
              te_other = true;
            }
          });
          if (n == 0) {
            return ParseError::kBadRequest;
          }
        }
        break;
      default:
        break;
    }
  }
  if (seen_te) {
    if (seen_cl || h->version == Version::kHttp10) {
      return ParseError::kBadRequest;  // RFC 9112 §6.1: ambiguous framing; close after 400
    }
    if (te_other || !chunked) {
      return is_request ? ParseError::kNotImplemented : ParseError::kBadRequest;
    }
    h->body = BodyKind::kChunked;
  } else if (seen_cl) {
    h->body = BodyKind::kContentLength;
  } else {
    h->body = is_request ? BodyKind::kNone : BodyKind::kUntilClose;
  }
  h->keep_alive = h->version == Version::kHttp11 ? !conn_close : (conn_keep_alive && !conn_close);
  return ParseError::kNone;
}

// "HTTP/1.1" -> version. Anything HTTP/x.y but 1.0/1.1 -> 505; garbage -> 400.
ParseError parseVersion(std::string_view v, Version* out) {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
      v[7] < '0' || v[7] > '9') {
    return ParseError::kBadRequest;
  }
  if (v[5] == '1' && v[7] == '1') {
    *out = Version::kHttp11;
  } else if (v[5] == '1' && v[7] == '0') {
    *out = Version::kHttp10;
  } else {
    return ParseError::kVersionNotSupported;
  }
  return ParseError::kNone;
}

}  // namespace

int statusFor(ParseError error) {
  switch (error) {
    case ParseError::kNone:
      return 200;
    case ParseError::kBadRequest:
      return 400;
    case ParseError::kHeaderTooLarge:
      return 431;
    case ParseError::kUriTooLong:
      return 414;
    case ParseError::kNotImplemented:
      return 501;
    case ParseError::kVersionNotSupported:
      return 505;
  }
  return 400;
}

std::string_view describe(ParseError error) {
  switch (error) {
    case ParseError::kNone:
      return "ok";
    case ParseError::kBadRequest:
      return "bad request";
    case ParseError::kHeaderTooLarge:
      return "request header fields too large";
    case ParseError::kUriTooLong:
      return "request-uri too long";
    case ParseError::kNotImplemented:
      return "transfer-coding not implemented";
    case ParseError::kVersionNotSupported:
      return "http version not supported";
  }
  return "bad request";
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

bool MessageHead::find(std::string_view name, std::string_view* value) const {
  for (uint32_t i = 0; i < num_headers; ++i) {
    if (headers[i].name.size() == name.size() && equalsIgnoreCase(headers[i].name, name)) {
      *value = headers[i].value;
      return true;
    }
  }
  return false;
}

size_t HeadParser::findEnd(std::string_view buf, size_t skip) {
  size_t i = scanned_ > skip ? scanned_ : skip;
  const char* base = buf.data();
  while (i < buf.size()) {
    const void* nl = std::memchr(base + i, '\n', buf.size() - i);
    if (nl == nullptr) {
      break;
    }
    size_t pos = static_cast<size_t>(static_cast<const char*>(nl) - base);
    if (pos == skip || base[pos - 1] != '\r') {
      error_ = ParseError::kBadRequest;  // bare LF
      return 0;
    }
    if (pos >= skip + 3 && base[pos - 2] == '\n' && base[pos - 3] == '\r') {
      scanned_ = pos + 1;
      return pos + 1;
    }
    i = pos + 1;
  }
  scanned_ = buf.size();
  return 0;
}

namespace {
// Leading CRLFs before a request line are ignored (RFC 9112 §2.2), e.g. after a pipelined body.
size_t skipLeadingCrlf(std::string_view buf) {
  size_t skip = 0;
  while (skip + 1 < buf.size() && buf[skip] == '\r' && buf[skip + 1] == '\n') {
    skip += 2;
  }
  return skip;
}
}  // namespace

HeadParser::Status HeadParser::parseRequest(std::string_view buf, RequestHead* out) {
  if (error_ != ParseError::kNone) {
    return Status::kError;
  }
  const size_t skip = skipLeadingCrlf(buf);
  size_t end = findEnd(buf, skip);
  if (error_ != ParseError::kNone) {
    return Status::kError;
  }
  if (end == 0 || end - skip > limits_.max_head_bytes) {
    if (buf.size() - skip > limits_.max_head_bytes || (end != 0)) {
      // Distinguish an over-long request line (414) from over-long fields (431).
      std::string_view first = buf.substr(skip, limits_.max_head_bytes);
      size_t eol = first.find('\r');
      if (eol == std::string_view::npos || eol > limits_.max_uri_bytes + 32) {
        return fail(ParseError::kUriTooLong);
      }
      return fail(ParseError::kHeaderTooLarge);
    }
    // An over-long request line is reported before the whole head arrives.
    if (buf.size() - skip > limits_.max_uri_bytes + 32 &&
        buf.substr(skip).find('\r') == std::string_view::npos) {
      return fail(ParseError::kUriTooLong);
    }
    // An HTTP/0.9 request ("GET /path" CRLF) has no version and no header block to wait
    // for: refuse it as soon as its line is complete instead of waiting for a head.
    const std::string_view rest = buf.substr(skip);
    if (const size_t eol = rest.find("\r\n"); eol != std::string_view::npos) {
      const std::string_view line = rest.substr(0, eol);
      const size_t sp = line.rfind(' ');
      if (sp == std::string_view::npos || line.substr(sp + 1).substr(0, 5) != "HTTP/") {
        return fail(ParseError::kBadRequest);
      }
    }
    return Status::kIncomplete;
  }
  const char* p = buf.data() + skip;
  const char* e = buf.data() + end;

  // request-line = method SP request-target SP HTTP-version CRLF
  const char* m = p;
  while (p < e && is(*p, kTchar)) {
    ++p;
  }
  if (p == m || *p != ' ') {
    return fail(ParseError::kBadRequest);
  }
  out->method = std::string_view(m, static_cast<size_t>(p - m));
  const char* t = ++p;
  while (p < e && is(*p, kTarget)) {
    ++p;
  }
  if (p == t || *p != ' ') {
    return fail(ParseError::kBadRequest);
  }
  out->target = std::string_view(t, static_cast<size_t>(p - t));
  if (out->target.size() > limits_.max_uri_bytes) {
    return fail(ParseError::kUriTooLong);
  }
  const char* v = ++p;
  while (p < e && *p != '\r') {
    ++p;
  }
  if (p + 1 >= e || p[1] != '\n') {
    return fail(ParseError::kBadRequest);
  }
  ParseError err = parseVersion(std::string_view(v, static_cast<size_t>(p - v)), &out->version);
  if (err != ParseError::kNone) {
    return fail(err);
  }
  p += 2;

  err = parseFields(p, e, limits_, out);
  if (err != ParseError::kNone) {
    return fail(err);
  }
  out->head_bytes = static_cast<uint32_t>(end);
  out->connection_upgrade = false;
  out->content_length = 0;
  err = applyFraming(out, /*is_request=*/true);
  if (err != ParseError::kNone) {
    return fail(err);
  }

  // Target forms: origin ("/p?q"), absolute ("http://h/p?q"), asterisk ("*", OPTIONS only).
  std::string_view authority;
  std::string_view path_and_query = out->target;
  if (path_and_query.front() != '/') {
    if (path_and_query == "*") {
      if (out->method != "OPTIONS") {
        return fail(ParseError::kBadRequest);
      }
    } else {
      size_t scheme_end = path_and_query.find("://");
      if (scheme_end == std::string_view::npos ||
          !(equalsIgnoreCase(path_and_query.substr(0, scheme_end), "http") ||
            equalsIgnoreCase(path_and_query.substr(0, scheme_end), "https"))) {
        return fail(ParseError::kBadRequest);
      }
      std::string_view rest = path_and_query.substr(scheme_end + 3);
      size_t slash = rest.find_first_of("/?");
      authority = rest.substr(0, slash);
      if (authority.empty() || authority.find('@') != std::string_view::npos) {
        return fail(ParseError::kBadRequest);
      }
      path_and_query = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
    }
  }
  size_t q = path_and_query.find('?');
  if (q == std::string_view::npos) {
    out->path = path_and_query;
    out->query = {};
    out->has_query = false;
  } else {
    out->path = path_and_query.substr(0, q);
    out->query = path_and_query.substr(q + 1);
    out->has_query = true;
  }
  if (!authority.empty() && out->path.empty()) {
    out->path = "/";
  }

  // Host: exactly one in HTTP/1.1 (RFC 9112 §3.2); an absolute-form authority wins.
  int hosts = 0;
  out->host = {};
  out->expect_continue = false;
  for (uint32_t i = 0; i < out->num_headers; ++i) {
    const Header& f = out->headers[i];
    if (f.name.size() == 4 && equalsIgnoreCase(f.name, "host")) {
      if (++hosts > 1) {
        return fail(ParseError::kBadRequest);
      }
      out->host = f.value;
    } else if (f.name.size() == 6 && equalsIgnoreCase(f.name, "expect")) {
      out->expect_continue = equalsIgnoreCase(f.value, "100-continue");
    }
  }
  if (hosts == 0 && out->version == Version::kHttp11) {
    return fail(ParseError::kBadRequest);
  }
  for (char c : out->host) {
    if (c == '/' || c == '@' || c == ' ' || c == '\t' || c == '\\') {
      return fail(ParseError::kBadRequest);
    }
  }
  if (!authority.empty()) {
    out->host = authority;
  }
  return Status::kComplete;
}

HeadParser::Status HeadParser::parseResponse(std::string_view buf, bool request_method_head,
                                             ResponseHead* out) {
  if (error_ != ParseError::kNone) {
    return Status::kError;
  }
  size_t end = findEnd(buf, 0);
  if (error_ != ParseError::kNone) {
    return Status::kError;
  }
  if (end == 0 || end > limits_.max_head_bytes) {
    if (buf.size() > limits_.max_head_bytes || end != 0) {
      return fail(ParseError::kHeaderTooLarge);
    }
    return Status::kIncomplete;
  }
  const char* p = buf.data();
  const char* e = buf.data() + end;
  // status-line = HTTP-version SP 3DIGIT SP [reason-phrase] CRLF
  if (end < 14) {
    return fail(ParseError::kBadRequest);
  }
  ParseError err = parseVersion(std::string_view(p, 8), &out->version);
  if (err != ParseError::kNone) {
    return fail(ParseError::kBadRequest);
  }
  p += 8;
  if (p[0] != ' ' || p[1] < '1' || p[1] > '9' || p[2] < '0' || p[2] > '9' || p[3] < '0' ||
      p[3] > '9') {
    return fail(ParseError::kBadRequest);
  }
  out->status = (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
  p += 4;
  const char* r = p;
  if (*p == ' ') {
    r = ++p;
    while (p < e && is(*p, kVchar)) {
      ++p;
    }
  }
  if (p + 1 >= e || p[0] != '\r' || p[1] != '\n') {
    return fail(ParseError::kBadRequest);
  }
  out->reason = std::string_view(r, static_cast<size_t>(p - r));
  p += 2;
  err = parseFields(p, e, limits_, out);
  if (err != ParseError::kNone) {
    return fail(err);
  }
  out->head_bytes = static_cast<uint32_t>(end);
  out->connection_upgrade = false;
  out->content_length = 0;
  err = applyFraming(out, /*is_request=*/false);
  if (err != ParseError::kNone) {
    return fail(err);
  }
  // RFC 9112 §6.3: these never have a body, whatever the fields say.
  if (request_method_head || out->status < 200 || out->status == 204 || out->status == 304) {
    out->body = BodyKind::kNone;
  }
  return Status::kComplete;
}

}  // namespace portico::http
