// The Dev Portal's secrets: developer passwords hashed with scrypt (OpenSSL's EVP_PBE_scrypt,
// a random 16-byte salt per password) and the random tokens of sessions, CSRF and API keys.
// Stateless functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace portico::cp::portal {

// scrypt cost: N = 2^15, r = 8, p = 1: 32 MiB and tens of milliseconds of one core per hash.
// OWASP suggests N = 2^17 (128 MiB); we take less memory because logins run concurrently on
// the portal's workers, and rate limits bound guessing. Stored with each hash, so raising it
// later keeps old hashes verifiable.
struct ScryptCost {
  uint64_t n = 1u << 15;
  uint64_t r = 8;
  uint64_t p = 1;
};

// "scrypt$N$r$p$<salt base64>$<hash base64>" (32-byte hash).
std::string hashPassword(std::string_view password, const ScryptCost& cost = {});
// True when `password` matches `stored` (constant-time comparison); false for a malformed
// `stored` too.
bool verifyPassword(std::string_view password, std::string_view stored);

// `bytes` random bytes (OpenSSL's CSPRNG) as lower-case hex.
std::string randomHex(size_t bytes);
// A random (version 4) UUID.
std::string randomUuid();
// SHA-256 of `data` as lower-case hex.
std::string sha256Hex(std::string_view data);
// Constant-time equality (length is not secret).
bool constantTimeEquals(std::string_view a, std::string_view b);

}  // namespace portico::cp::portal
