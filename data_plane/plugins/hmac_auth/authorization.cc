#include "data_plane/plugins/hmac_auth/authorization.h"

#include <cctype>
#include <ctime>
#include <string>

namespace portico::dp::plugins::hmac_auth {
namespace {

bool space(char c) { return c == ' ' || c == '\t'; }

// Reads `name="value"` at *pos (after optional spaces); the value ends at the last `"` before
// `end_marker` (Kong's greedy groups), or at the final quote when end_marker is empty.
bool field(std::string_view in, size_t* pos, std::string_view name, bool last,
           std::string* value) {
  size_t i = *pos;
  while (i < in.size() && space(in[i])) ++i;
  if (in.substr(i, name.size()) != name || in.substr(i + name.size(), 2) != "=\"") {
    return false;
  }
  i += name.size() + 2;
  size_t close;
  if (last) {
    std::string_view rest = in.substr(i);
    while (!rest.empty() && space(rest.back())) rest.remove_suffix(1);
    if (rest.empty() || rest.back() != '"') return false;
    close = i + rest.size() - 1;
  } else {
    close = in.find("\",", i);
    if (close == std::string_view::npos) return false;
  }
  if (close <= i) return false;  // values are non-empty (.+)
  value->assign(in.substr(i, close - i));
  *pos = last ? in.size() : close + 2;
  return true;
}

}  // namespace

std::optional<HmacAuthorization> parseHmacAuthorization(std::string_view value) {
  if (value.size() > 16 * 1024) return std::nullopt;
  size_t i = 0;
  while (i < value.size() && space(value[i])) ++i;
  if (value.size() - i < 4 ||
      !(std::tolower(static_cast<unsigned char>(value[i])) == 'h' &&
        std::tolower(static_cast<unsigned char>(value[i + 1])) == 'm' &&
        std::tolower(static_cast<unsigned char>(value[i + 2])) == 'a' &&
        std::tolower(static_cast<unsigned char>(value[i + 3])) == 'c')) {
    return std::nullopt;
  }
  i += 4;
  HmacAuthorization out;
  std::string headers;
  if (!field(value, &i, "username", false, &out.username) ||
      !field(value, &i, "algorithm", false, &out.algorithm) ||
      !field(value, &i, "headers", false, &headers) ||
      !field(value, &i, "signature", true, &out.signature)) {
    return std::nullopt;
  }
  size_t p = 0;
  while (p < headers.size()) {
    const size_t sp = headers.find(' ', p);
    std::string h = headers.substr(p, sp == std::string::npos ? std::string::npos : sp - p);
    for (char& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!h.empty()) out.headers.push_back(std::move(h));
    if (sp == std::string::npos) break;
    p = sp + 1;
  }
  return out;
}

std::optional<int64_t> parseHttpDate(std::string_view value) {
  if (value.size() > 64) return std::nullopt;
  const std::string s(value);
  for (const char* format : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                             "%a %b %e %H:%M:%S %Y"}) {
    std::tm tm{};
    const char* end = strptime(s.c_str(), format, &tm);
    if (end != nullptr && *end == '\0') {
      return static_cast<int64_t>(timegm(&tm));
    }
  }
  return std::nullopt;
}

}  // namespace portico::dp::plugins::hmac_auth
