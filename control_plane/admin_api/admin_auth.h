// Admin API tokens (Kong's `Kong-Admin-Token` header) with two roles, read-only and admin.
// Tokens look like "ptk_<key id>_<secret>": the key id finds the row with one index lookup,
// the row keeps only a per-token salt and SHA-256(salt || token), compared in constant time.
// `portico-cp admins create|list|revoke` manage them; AdminApi checks them with --admin_auth=on.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "control_plane/store/pg_store_impl.h"

namespace portico::cp {

constexpr char kRoleReadOnly[] = "read-only";
constexpr char kRoleAdmin[] = "admin";

struct NewAdminToken {
  std::string token;   // shown once to the operator, never stored
  AdminRecord record;  // name, role, key_id, salt, token_hash: what the store keeps
};

// A fresh random token for `name` with `role` (kRoleReadOnly or kRoleAdmin). Thread-safe.
NewAdminToken makeAdminToken(const std::string& name, const std::string& role);
// Whether `token` is the one `record` was made for (constant-time comparison).
bool tokenMatches(const std::string& token, const AdminRecord& record);

struct AuthenticatedAdmin {
  std::string name;
  std::string role;
};

// Verifies tokens against the admins table, remembering successful checks for `cache_ttl`
// (a revoked token keeps working on a replica for at most that long). Called on Admin API
// DB worker threads; thread-safe.
class AdminAuthenticator {
 public:
  explicit AdminAuthenticator(PgConfigStore& store, absl::Duration cache_ttl = absl::Seconds(5));

  // kUnauthenticated for an empty, malformed, unknown or revoked token; kUnavailable when
  // the database cannot be reached.
  absl::StatusOr<AuthenticatedAdmin> authenticate(const std::string& token);

 private:
  struct Cached {
    AuthenticatedAdmin admin;
    absl::Time expires;
  };
  PgConfigStore& store_;
  const absl::Duration ttl_;
  absl::Mutex mu_;
  // Keyed by SHA-256 of the token, so the cache holds no usable secret.
  std::unordered_map<std::string, Cached> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace portico::cp
