#include "data_plane/router/path.h"

#include <array>
#include <cstdint>

namespace portico::dp::router {
namespace {

constexpr std::string_view kReserved = "!*'();:@&=+$,/?%#[]";

constexpr std::array<bool, 256> makeSafe() {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) {
    bool unreserved = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                      (c >= 'A' && c <= 'Z') || c == '-' || c == '.' || c == '_' || c == '~';
    t[c] = unreserved || (c != 0 && kReserved.find(static_cast<char>(c)) != std::string_view::npos);
  }
  return t;
}
constexpr std::array<bool, 256> kSafe = makeSafe();

int hexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

bool validUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) {
      return false;
    }
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xc0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// Removes the last segment (and its '/') from out, RFC 3986 §5.2.4 step 2C.
void popSegment(std::string* out) {
  size_t slash = out->rfind('/');
  out->resize(slash == std::string::npos ? 0 : slash);
}

}  // namespace

bool normalizePath(std::string_view raw, std::string* out) {
  out->clear();
  // Pass 1: percent-decoding of non-reserved characters into `decoded` (reusing *out).
  std::string& d = *out;
  bool needs_dots = false;
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '%') {
      if (i + 2 >= raw.size()) {
        return false;
      }
      int hi = hexValue(raw[i + 1]);
      int lo = hexValue(raw[i + 2]);
      if (hi < 0 || lo < 0) {
        return false;
      }
      char decoded = static_cast<char>(hi * 16 + lo);
      if (kReserved.find(decoded) != std::string_view::npos && decoded != 0) {
        static constexpr char kHex[] = "0123456789ABCDEF";
        d.push_back('%');
        d.push_back(kHex[hi]);
        d.push_back(kHex[lo]);
      } else {
        d.push_back(decoded);
        needs_dots |= decoded == '.' || decoded == '/';
      }
      i += 2;
      continue;
    }
    needs_dots |= c == '.' || (c == '/' && !d.empty() && d.back() == '/');
    d.push_back(c);
  }
  if (!validUtf8(d)) {
    return false;
  }
  if (!needs_dots) {
    return true;  // fast path: nothing to merge or remove
  }
  // Pass 2: merge "//" and remove dot segments, in place (the output never outgrows the input).
  std::string in;
  in.swap(d);
  d.clear();
  size_t i = 0;
  const size_t n = in.size();
  while (i < n) {
    if (in[i] == '/') {
      while (i + 1 < n && in[i + 1] == '/') {
        ++i;  // merge slashes
      }
      size_t seg_begin = i + 1;
      size_t seg_end = in.find('/', seg_begin);
      if (seg_end == std::string::npos) {
        seg_end = n;
      }
      std::string_view seg(in.data() + seg_begin, seg_end - seg_begin);
      if (seg == ".") {
        if (seg_end == n) {
          d.push_back('/');
        }
      } else if (seg == "..") {
        popSegment(&d);
        if (seg_end == n) {
          d.push_back('/');
        }
      } else {
        d.push_back('/');
        d.append(seg);
      }
      i = seg_end;
    } else {
      // Relative start (no leading '/'): copy up to the first slash.
      size_t seg_end = in.find('/', i);
      if (seg_end == std::string::npos) {
        seg_end = n;
      }
      std::string_view seg(in.data() + i, seg_end - i);
      if (seg != "." && seg != "..") {
        d.append(seg);
      }
      i = seg_end;
    }
  }
  if (d.empty()) {
    d.push_back('/');
  }
  return true;
}

void appendEscaped(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : s) {
    const auto u = static_cast<uint8_t>(c);
    if (kSafe[u]) {
      out->push_back(c);
    } else {
      out->push_back('%');
      out->push_back(kHex[u >> 4]);
      out->push_back(kHex[u & 0xf]);
    }
  }
}

void appendUpstreamPath(std::string_view base, std::string_view normalized, size_t strip_len,
                        std::string* out) {
  if (base.empty()) {
    base = "/";
  }
  // service.path without its trailing slash ("/" stays "/").
  const std::string_view trimmed =
      base.size() > 1 && base.back() == '/' ? base.substr(0, base.size() - 1) : base;
  const size_t start = out->size();
  if (strip_len == 0) {
    // No strip (or a route that stripped only "/"): the request path is appended to the
    // service path; a service path ending in "/" absorbs the request's leading slash.
    appendEscaped(base, out);
    if (base.back() == '/') {
      appendEscaped(normalized.substr(normalized.empty() ? 0 : 1), out);
    } else if (normalized != "/") {
      appendEscaped(normalized, out);
    }
  } else {
    std::string_view postfix = normalized.substr(strip_len < normalized.size() ? strip_len
                                                                                : normalized.size());
    // A leading "./" or "../" (or a bare "." / "..") left by the strip is dropped.
    if (postfix == "." || postfix == "..") {
      postfix = {};
    } else if (postfix.substr(0, 2) == "./") {
      postfix.remove_prefix(2);
    } else if (postfix.substr(0, 3) == "../") {
      postfix.remove_prefix(3);
    }
    if (postfix.empty()) {
      // Nothing left: the request's trailing slash (if any) is kept on the service path.
      appendEscaped(trimmed, out);
      if (trimmed != "/" && !normalized.empty() && normalized.back() == '/') {
        out->push_back('/');
      }
    } else {
      // v0 always joins with exactly one "/" ("/srv" + strip "/rou" + "/roureq" -> "/srv/req").
      if (trimmed != "/") {
        appendEscaped(trimmed, out);
      }
      if (postfix.front() != '/') {
        out->push_back('/');
      }
      appendEscaped(postfix, out);
    }
  }
  if (out->size() == start) {
    out->push_back('/');
  }
}

}  // namespace portico::dp::router
