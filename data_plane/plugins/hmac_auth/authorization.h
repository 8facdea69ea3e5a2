// The hmac-auth Authorization parser (pure, fuzzed) and the signing string Kong builds.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portico::dp::plugins::hmac_auth {

struct HmacAuthorization {
  std::string username;
  std::string algorithm;
  std::vector<std::string> headers;  // lower-cased, in the order to sign
  std::string signature;             // base64, as sent
};

// `\s*hmac\s*username="…",\s*algorithm="…",\s*headers="…",\s*signature="…"`; nullopt
// when it does not match or is over 16 KB. The scheme is case-insensitive.
std::optional<HmacAuthorization> parseHmacAuthorization(std::string_view value);

// An HTTP date (IMF-fixdate, RFC 850 or asctime) as seconds since the epoch.
std::optional<int64_t> parseHttpDate(std::string_view value);

}  // namespace portico::dp::plugins::hmac_auth
