#include "data_plane/plugins/basic_auth/credentials.h"

#include "data_plane/plugins/request_util.h"

namespace portico::dp::plugins::basic_auth {
namespace {

constexpr size_t kMaxHeader = 16 * 1024;

bool space(char c) { return c == ' ' || c == '\t'; }

}  // namespace

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
