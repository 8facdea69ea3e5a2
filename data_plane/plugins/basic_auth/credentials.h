// The Basic credentials parser (RFC 7617 as Kong reads it): a pure function, so the fuzz
// target and the plugin share it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace portico::dp::plugins::basic_auth {

struct BasicCredentials {
  std::string username;
  std::string password;
};

// `\s*[Bb]asic\s*(.+)`, standard base64 (padding optional), split at the first ':' (the
// password may hold more); the user is non-empty. nullopt for anything else, including a
// value over 16 KB.
std::optional<BasicCredentials> parseBasicAuthorization(std::string_view header);

}  // namespace portico::dp::plugins::basic_auth
