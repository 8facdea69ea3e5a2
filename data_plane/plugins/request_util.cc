#include "data_plane/plugins/request_util.h"

#include "absl/strings/str_cat.h"

namespace portico::dp::plugins {
namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int sextet(char c, bool url_safe) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || (url_safe && c == '-')) return 62;
  if (c == '/' || (url_safe && c == '_')) return 63;
  return -1;
}

char foldHeaderChar(char c) {
  if (c == '_') return '-';
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// Calls fn(raw_name, raw_value, has_value, begin, end) for each '&'-separated argument.
template <class Fn>
void forEachArg(std::string_view query, Fn&& fn) {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view arg = query.substr(pos, amp - pos);
    if (!arg.empty()) {
      size_t eq = arg.find('=');
      fn(arg.substr(0, eq), eq == std::string_view::npos ? std::string_view() : arg.substr(eq + 1),
         eq != std::string_view::npos, pos, amp);
    }
    pos = amp + 1;
  }
}

}  // namespace

std::optional<std::string> decodeBase64(std::string_view in, bool url_safe) {
  while (!in.empty() && in.back() == '=') {
    in.remove_suffix(1);
  }
  if (in.size() % 4 == 1) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = sextet(c, url_safe);
    if (v < 0) {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

bool decodeQueryComponent(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      out->push_back(' ');
    } else if (c == '%') {
      const int hi = i + 1 < in.size() ? hexValue(in[i + 1]) : -1;
      const int lo = i + 2 < in.size() ? hexValue(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return false;
      }
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out->push_back(c);
    }
  }
  return true;
}

int findQueryArg(std::string_view query, std::string_view name, std::string* value) {
  int count = 0;
  std::string decoded;
  forEachArg(query, [&](std::string_view raw_name, std::string_view raw_value, bool has_value,
                        size_t, size_t) {
    if (!has_value || !decodeQueryComponent(raw_name, &decoded) || decoded != name) {
      return;
    }
    if (count++ == 0 && !decodeQueryComponent(raw_value, value)) {
      value->assign(raw_value);  // a bad escape: compare the raw text (it matches no key)
    }
  });
  return count;
}

std::string removeQueryArg(std::string_view query, std::string_view name) {
  std::string out;
  std::string decoded;
  forEachArg(query, [&](std::string_view raw_name, std::string_view, bool, size_t begin,
                        size_t end) {
    if (decodeQueryComponent(raw_name, &decoded) && decoded == name) {
      return;
    }
    if (!out.empty()) out.push_back('&');
    out.append(query.substr(begin, end - begin));
  });
  return out;
}

bool findHeaderLoose(const http::RequestHead& head, std::string_view name,
                     std::string_view* value, std::string_view* actual_name) {
  for (uint32_t i = 0; i < head.num_headers; ++i) {
    const http::Header& h = head.headers[i];
    if (h.name.size() != name.size()) continue;
    bool same = true;
    for (size_t j = 0; j < name.size() && same; ++j) {
      same = foldHeaderChar(h.name[j]) == foldHeaderChar(name[j]);
    }
    if (same) {
      *value = h.value;
      if (actual_name != nullptr) *actual_name = h.name;
      return true;
    }
  }
  return false;
}

bool safeHeaderValue(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

void setConsumer(RequestContext& ctx, const Consumer& consumer, std::string_view credential_id,
                 std::string_view credential_identifier) {
  ctx.authenticate(&consumer, credential_id);
  const config::v1::Consumer& c = *consumer.entity;
  ctx.setUpstreamHeader("X-Consumer-ID", c.id());
  if (c.has_custom_id()) {
    ctx.setUpstreamHeader("X-Consumer-Custom-ID", c.custom_id());
  } else {
    ctx.removeUpstreamHeader("X-Consumer-Custom-ID");
  }
  if (c.has_username()) {
    ctx.setUpstreamHeader("X-Consumer-Username", c.username());
  } else {
    ctx.removeUpstreamHeader("X-Consumer-Username");
  }
  if (!credential_identifier.empty()) {
    ctx.setUpstreamHeader("X-Credential-Identifier", credential_identifier);
    ctx.removeUpstreamHeader("X-Anonymous-Consumer");
  } else {
    ctx.removeUpstreamHeader("X-Credential-Identifier");
    ctx.setUpstreamHeader("X-Anonymous-Consumer", "true");
  }
}

PhaseResult failAuthentication(RequestContext& ctx, const std::string* anonymous, int status,
                               std::string_view message, std::string_view www_authenticate) {
  if (anonymous != nullptr) {
    const Consumer* anon = ctx.consumers().byIdOrUsername(*anonymous);
    if (anon == nullptr) {
      ctx.sendLocalReply(500, absl::StrCat("anonymous consumer ", *anonymous,
                                           " is configured but doesn't exist"));
      return PhaseResult::kStop;
    }
    setConsumer(ctx, *anon, "", "");
    return PhaseResult::kContinue;
  }
  if (!www_authenticate.empty()) {
    ctx.setResponseHeader("WWW-Authenticate", www_authenticate);
  }
  ctx.sendLocalReply(status, message);
  return PhaseResult::kStop;
}

}  // namespace portico::dp::plugins
