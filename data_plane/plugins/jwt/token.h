// JWS compact tokens (RFC 7515) as Kong's jwt plugin reads them: decoding is a pure function
// (fuzzed), verification uses OpenSSL. Never accepts "none".
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace portico::dp::plugins::jwt {

inline constexpr size_t kMaxTokenBytes = 64 * 1024;

struct DecodedToken {
  nlohmann::json header;  // an object
  nlohmann::json claims;  // an object
  std::string signing_input;  // "<header>.<claims>" as received
  std::string signature;      // raw bytes
  std::string alg;            // header.alg, one of the supported algorithms
};

enum class DecodeError { kNone, kInvalidJson, kInvalidAlg };

// base64url without padding (padding tolerated); nullopt on any other character.
std::optional<std::string> base64UrlDecode(std::string_view in);

// Splits and decodes; kInvalidJson for anything malformed (three parts, base64url, JSON
// objects, size and depth limits), kInvalidAlg when header.alg is not supported.
DecodeError decodeToken(std::string_view token, DecodedToken* out);

// True for HS256/384/512, RS256/384/512, ES256/384/512, PS256/384/512 and EdDSA.
bool supportedAlg(std::string_view alg);

// Verifies the signature: HS* with `secret`, the others with the PEM public key `key`.
// false for a bad key as well; *bad_key tells which (Kong: "Invalid key/secret").
bool verifySignature(const DecodedToken& token, const std::string& secret_or_pem,
                     bool* bad_key);

}  // namespace portico::dp::plugins::jwt
