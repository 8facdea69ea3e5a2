// Consumers and their credentials as lookup tables, built once per snapshot (views into the
// snapshot's config, which outlives the index) so an auth plugin finds a key, a username or a
// JWT issuer with one hash lookup per request.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/config/key_auth_table.h"
#include "portico/config/v1/config.pb.h"

namespace portico::dp {

struct Consumer {
  const config::v1::Consumer* entity = nullptr;
  std::vector<std::string_view> groups;  // acl groups, in the order the acls were created
};

class ConsumerIndex {
 public:
  // A key-auth credential found by its key (a value: the credentials live in a compact
  // config::KeyAuthTable, not as messages).
  struct KeyAuth {
    const Consumer* consumer = nullptr;
    char credential_id[36] = {};
    int64_t expires_at_s = 0;  // created_at + ttl (Kong's row ttl); 0 = never
    std::string_view credentialId() const { return {credential_id, sizeof(credential_id)}; }
  };
  struct BasicAuth {
    const Consumer* consumer = nullptr;
    const config::v1::BasicAuthCredential* credential = nullptr;
  };
  struct Jwt {
    const Consumer* consumer = nullptr;
    const config::v1::JwtSecret* credential = nullptr;
  };
  struct Hmac {
    const Consumer* consumer = nullptr;
    const config::v1::HmacAuthCredential* credential = nullptr;
  };

  // Fails (kInvalidArgument, naming the entity) on a credential whose consumer is missing or
  // a duplicate key; validateSnapshot() has already refused both, so this is a second guard.
  // Key-auth credentials come from `key_auth` (the index shares it); `config` holds the
  // others. A key-auth row whose consumer is missing authenticates nobody.
  static absl::StatusOr<std::unique_ptr<const ConsumerIndex>> build(
      const config::v1::Snapshot& config, std::shared_ptr<const config::KeyAuthTable> key_auth);
  // An index with nothing in it (tests, plugin benchmarks).
  static const ConsumerIndex& empty();

  const Consumer* byId(std::string_view id) const;
  const Consumer* byUsername(std::string_view username) const;
  // Kong's `anonymous` lookup: by id first, then by username.
  const Consumer* byIdOrUsername(std::string_view value) const;

  // False when no credential has `key` (or its consumer is gone).
  bool keyAuth(std::string_view key, KeyAuth* out) const;
  const BasicAuth* basicAuth(std::string_view username) const;
  const Jwt* jwt(std::string_view key) const;
  const Hmac* hmac(std::string_view username) const;

  size_t size() const { return consumers_.size(); }

 private:
  std::vector<Consumer> consumers_;  // config order; never resized after build
  absl::flat_hash_map<std::string_view, const Consumer*> by_id_;
  absl::flat_hash_map<std::string_view, const Consumer*> by_username_;
  std::shared_ptr<const config::KeyAuthTable> key_auth_;
  absl::flat_hash_map<std::string_view, BasicAuth> basic_auth_;
  absl::flat_hash_map<std::string_view, Jwt> jwt_;
  absl::flat_hash_map<std::string_view, Hmac> hmac_;
};

}  // namespace portico::dp
