// Data-plane credentials the control plane issues (Konnect's "new data plane node"): DP
// certificates signed by the cluster CA with the group in a SAN URI, and join tokens with an
// expiry that admit one node; both listed, revoked and replaced by API, and both refused at
// connect once revoked or expired (CredentialAuthority, answered from memory). A thread
// reloads the table every `refresh`, so a revocation through any replica drops the DPs of
// every replica within seconds. Also: the cluster CA itself, created once and shared through
// PostgreSQL with its key sealed by the keyring.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "control_plane/provisioning/keyring.h"
#include "control_plane/provisioning/pki.h"
#include "control_plane/store/pg_pool.h"
#include "control_plane/sync/sync_server.h"

namespace portico::cp::provisioning {

// The cluster CA: the one in PostgreSQL, or a new one (10 years) stored there by the first
// control plane to get here (an advisory lock orders replicas starting together).
// kInvalidArgument when the stored key does not open with `keyring` (another keyring).
absl::StatusOr<pki::KeyPair> ensureClusterCa(PgPool& pool, const pki::Keyring& keyring);

struct ProvisioningOptions {
  std::string cp_address;    // host:port DPs connect to, for the run material
  std::string server_name;   // the name DPs expect in the CP's certificate
  std::string dp_image = "portico-dp:latest";  // for the Kubernetes Deployment
  absl::Duration refresh = absl::Seconds(2);
};

class Credentials final : public CredentialAuthority {
 public:
  Credentials(PgPool& pool, pki::KeyPair ca, ProvisioningOptions options);
  ~Credentials() override;  // stop()s

  // Loads the table once (the error if PostgreSQL cannot be read), then refreshes it on a
  // thread until stop().
  absl::Status start();
  void stop();

  struct Answer {
    int status = 200;
    std::string body;  // JSON; "" for 204
  };
  // GET|POST /data-plane-certificates, GET|DELETE /data-plane-certificates/{id}, and the
  // same for /data-plane-tokens, of `group`. Blocks on PostgreSQL.
  Answer handle(const std::string& method, const std::string& group,
                const std::vector<std::string>& segments, const std::string& body);

  // Interface: CredentialAuthority
  Verdict certificate(const std::string& sha256) const override;
  Verdict token(const std::string& token) const override;
  std::string claimToken(const std::string& id, const std::string& node_id) override;
  std::string invalidated(const std::string& id) const override;

 private:
  struct Entry {
    std::string id, group, kind, fingerprint, name, serial, used_by;
    int64_t expires_at = 0, created_at = 0;
    std::optional<int64_t> revoked_at;
  };
  absl::Status reload();
  void writeClaims();
  Verdict verdict(const Entry& e) const;
  Answer issue(const std::string& group, const std::string& kind, const std::string& body);
  // Every credential of `kind` in `group`, or the one with `id` ("" = all).
  Answer list(const std::string& group, const std::string& kind, const std::string& id = "");
  Answer revoke(const std::string& group, const std::string& kind, const std::string& id);
  std::string runCommand(const std::string& group, bool token, const std::string& secret) const;

  PgPool& pool_;
  const pki::KeyPair ca_;
  const ProvisioningOptions options_;
  std::thread thread_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, Entry> by_fingerprint_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> fingerprint_of_ ABSL_GUARDED_BY(mu_);  // by id
  std::map<std::string, std::string> claims_ ABSL_GUARDED_BY(mu_);  // token id -> node, unwritten
};

}  // namespace portico::cp::provisioning
