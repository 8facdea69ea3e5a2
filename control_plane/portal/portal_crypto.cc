#include "control_plane/portal/portal_crypto.h"

#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace portico::cp::portal {
namespace {

// Debian's Abseil has its own string_view.
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;
// Bounds on what a stored hash may ask for, so a tampered row cannot make a login burn
// gigabytes or minutes.
constexpr uint64_t kMaxN = 1u << 20;
constexpr uint64_t kMaxR = 32;
constexpr uint64_t kMaxP = 16;

bool scrypt(std::string_view password, std::string_view salt, const ScryptCost& cost,
            unsigned char* out) {
  // The memory scrypt needs is 128 * N * r bytes (plus p blocks); OpenSSL refuses more than
  // maxmem, whose default (32 MiB) is exactly our N * r: allow twice what is needed.
  const uint64_t maxmem = 2 * (128 * cost.n * cost.r + 128 * cost.r * cost.p) + (1 << 20);
  const bool ok = EVP_PBE_scrypt(password.data(), password.size(),
                                 reinterpret_cast<const unsigned char*>(salt.data()), salt.size(),
                                 cost.n, cost.r, cost.p, maxmem, out, kHashBytes) == 1;
  // Its 32 MiB block came from portico-cp's heap (main.cc keeps blocks under 64 MB there and
  // trims only past 1 GB) and would stay resident after every login: the portal's startup
  // hash alone added 32 MB to an idle CP (cp_listener_abuse_test saw RSS stay high).
  malloc_trim(0);
  return ok;
}

}  // namespace

std::string hashPassword(std::string_view password, const ScryptCost& cost) {
  unsigned char salt[kSaltBytes];
  if (RAND_bytes(salt, sizeof(salt)) != 1) {
    std::abort();  // no randomness: nothing safe to do
  }
  unsigned char hash[kHashBytes];
  const std::string_view salt_view(reinterpret_cast<const char*>(salt), sizeof(salt));
  if (!scrypt(password, salt_view, cost, hash)) {
    std::abort();  // only a bad cost or no memory: our constants
  }
  return absl::StrCat("scrypt$", cost.n, "$", cost.r, "$", cost.p, "$",
                      absl::Base64Escape(av(salt_view)), "$",
                      absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(hash),
                                                           sizeof(hash))));
}

bool verifyPassword(std::string_view password, std::string_view stored) {
  const std::vector<absl::string_view> parts = absl::StrSplit(av(stored), '$');
  if (parts.size() != 6 || parts[0] != "scrypt") {
    return false;
  }
  ScryptCost cost;
  std::string salt, want;
  if (!absl::SimpleAtoi(parts[1], &cost.n) || !absl::SimpleAtoi(parts[2], &cost.r) ||
      !absl::SimpleAtoi(parts[3], &cost.p) || cost.n < 2 || cost.n > kMaxN ||
      (cost.n & (cost.n - 1)) != 0 || cost.r < 1 || cost.r > kMaxR || cost.p < 1 ||
      cost.p > kMaxP || !absl::Base64Unescape(parts[4], &salt) ||
      !absl::Base64Unescape(parts[5], &want) || want.size() != kHashBytes) {
    return false;
  }
  unsigned char got[kHashBytes];
  if (!scrypt(password, salt, cost, got)) {
    return false;
  }
  return CRYPTO_memcmp(got, want.data(), kHashBytes) == 0;
}

std::string randomHex(size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1) {
    std::abort();
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(buf.data()), buf.size()));
}

std::string randomUuid() {
  std::string h = randomHex(16);
  h[12] = '4';                                       // version 4
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];  // RFC 4122 variant
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::string sha256Hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

bool constantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace portico::cp::portal
