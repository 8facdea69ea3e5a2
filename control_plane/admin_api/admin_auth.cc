#include "control_plane/admin_api/admin_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace portico::cp {
namespace {

constexpr char kTokenPrefix[] = "ptk_";
constexpr size_t kKeyIdBytes = 8;
constexpr size_t kSecretBytes = 32;
constexpr size_t kSaltBytes = 16;
constexpr size_t kMaxCached = 4096;

std::string hex(const unsigned char* data, size_t n) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[data[i] >> 4]);
    out.push_back(kHex[data[i] & 15]);
  }
  return out;
}

std::string randomHex(size_t bytes) {
  unsigned char buf[64];
  if (bytes > sizeof(buf) || RAND_bytes(buf, static_cast<int>(bytes)) != 1) {
    // No entropy means no safe token: refusing is the only correct answer.
    throw std::runtime_error("RAND_bytes failed");
  }
  return hex(buf, bytes);
}

std::string sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return hex(md, len);
}

std::string tokenHash(const std::string& salt, const std::string& token) {
  return sha256Hex(salt + token);
}

// The key id of a well-formed token, or "".
std::string keyIdOf(const std::string& token) {
  const size_t prefix = sizeof(kTokenPrefix) - 1;
  if (token.size() != prefix + 2 * kKeyIdBytes + 1 + 2 * kSecretBytes ||
      token.compare(0, prefix, kTokenPrefix) != 0 || token[prefix + 2 * kKeyIdBytes] != '_') {
    return "";
  }
  return token.substr(prefix, 2 * kKeyIdBytes);
}

}  // namespace

NewAdminToken makeAdminToken(const std::string& name, const std::string& role) {
  NewAdminToken out;
  out.record.name = name;
  out.record.role = role;
  out.record.key_id = randomHex(kKeyIdBytes);
  out.record.salt = randomHex(kSaltBytes);
  out.token = kTokenPrefix + out.record.key_id + "_" + randomHex(kSecretBytes);
  out.record.token_hash = tokenHash(out.record.salt, out.token);
  return out;
}

bool tokenMatches(const std::string& token, const AdminRecord& record) {
  const std::string h = tokenHash(record.salt, token);
  return h.size() == record.token_hash.size() &&
         CRYPTO_memcmp(h.data(), record.token_hash.data(), h.size()) == 0;
}

AdminAuthenticator::AdminAuthenticator(PgConfigStore& store, absl::Duration cache_ttl)
    : store_(store), ttl_(cache_ttl) {}

absl::StatusOr<AuthenticatedAdmin> AdminAuthenticator::authenticate(const std::string& token) {
  const std::string key_id = keyIdOf(token);
  if (key_id.empty()) {
    return absl::UnauthenticatedError("malformed token");
  }
  const std::string cache_key = sha256Hex(token);
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    if (auto it = cache_.find(cache_key); it != cache_.end()) {
      if (it->second.expires > now) {
        return it->second.admin;
      }
      cache_.erase(it);
    }
  }
  auto record = store_.findAdminByKeyId(key_id);
  if (absl::IsNotFound(record.status())) {
    return absl::UnauthenticatedError("unknown token");
  }
  if (!record.ok()) {
    return record.status();
  }
  if (!tokenMatches(token, *record)) {
    return absl::UnauthenticatedError("unknown token");
  }
  AuthenticatedAdmin admin{record->name, record->role};
  absl::MutexLock lock(&mu_);
  if (cache_.size() >= kMaxCached) {
    cache_.clear();
  }
  cache_[cache_key] = Cached{admin, now + ttl_};
  return admin;
}

}  // namespace portico::cp
