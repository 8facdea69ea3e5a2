#include "data_plane/plugins/basic_auth/credentials.h"

namespace portico::dp::plugins::basic_auth {
namespace {

constexpr size_t kMaxHeader = 16 * 1024;

int sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool space(char c) { return c == ' ' || c == '\t'; }

}  // namespace

std::optional<std::string> decodeBase64(std::string_view in) {
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
    const int v = sextet(c);
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

std::optional<BasicCredentials> parseBasicAuthorization(std::string_view header) {
  if (header.size() > kMaxHeader) {
    return std::nullopt;
  }
  size_t i = 0;
  while (i < header.size() && space(header[i])) ++i;
  if (header.size() - i < 5 || (header[i] != 'B' && header[i] != 'b') ||
      header.substr(i + 1, 4) != "asic") {
    return std::nullopt;
  }
  i += 5;
  while (i < header.size() && space(header[i])) ++i;
  std::string_view encoded = header.substr(i);
  while (!encoded.empty() && space(encoded.back())) encoded.remove_suffix(1);
  if (encoded.empty()) {
    return std::nullopt;
  }
  std::optional<std::string> decoded = decodeBase64(encoded);
  if (!decoded) {
    return std::nullopt;
  }
  const size_t colon = decoded->find(':');
  if (colon == std::string::npos || colon == 0) {
    return std::nullopt;
  }
  return BasicCredentials{decoded->substr(0, colon), decoded->substr(colon + 1)};
}

}  // namespace portico::dp::plugins::basic_auth
