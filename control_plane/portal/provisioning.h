// What the Dev Portal's approvals do at the gateway, and the status changes that trigger them.
//
// An approved registration of application A for catalog version V gives A, in every control
// plane V is bound to: a consumer `portal-app-<A>` (custom_id A), a key-auth credential
// holding A's key, and the acl group `portal-version-<V>`. Every gateway service V is bound
// to carries key-auth and an acl plugin allowing that group (the portal adds them, or adds
// the group to an acl plugin the service has; see secureVersion), so only applications
// registered for V pass. Everything is written through PgConfigStore::writeJson/deleteJson,
// the Admin API's own write path: each write is a new generation that reaches the data
// planes like any Admin API change. Portal-made entities carry the tag `portico-portal`.
// All methods block on PostgreSQL: call them from a DB worker thread. Thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "control_plane/store/pg_catalog.h"
#include "control_plane/store/pg_portal.h"
#include "control_plane/store/pg_store_impl.h"

namespace portico::cp::portal {

inline constexpr char kPortalTag[] = "portico-portal";
std::string consumerUsername(const std::string& application_id);  // "portal-app-<id>"
std::string aclGroup(const std::string& version_id);              // "portal-version-<id>"

class Provisioner {
 public:
  explicit Provisioner(PgConfigStore& store) : store_(store) {}

  // Makes the version's gateway services require key-auth and the version's acl group, in
  // each control plane it is bound to. Idempotent: a key-auth plugin the service already has
  // is kept as it is; an acl plugin it has gets the group added to its `allow` list.
  // kFailedPrecondition when the service's acl plugin denies by a `deny` list (the portal
  // cannot express "registered applications only" there).
  absl::Status secureVersion(const CatalogVersion& version);
  // secureVersion, then the application's consumer, key and the version's group in each
  // control plane the version is bound to. Idempotent.
  absl::Status grant(const PortalApplication& app, const CatalogVersion& version);
  // Takes the version's group from the application's consumer in those control planes: the
  // key stops working there for this version (the acl plugin answers 403).
  absl::Status revoke(const PortalApplication& app, const CatalogVersion& version);
  // Deletes the application's consumer (its credential and groups with it) in every control
  // plane.
  absl::Status removeApplication(const std::string& application_id);

 private:
  absl::StatusOr<std::string> ensureConsumer(const std::string& group,
                                             const PortalApplication& app);
  absl::Status ensureChild(const std::string& group, const std::string& type,
                           const std::string& consumer_id, const std::string& field,
                           const std::string& value);
  absl::Status ensureServicePlugins(const std::string& group, const std::string& service_id,
                                    const std::string& acl_group);
  // Processes `input` as a `type` entity with a new id and creates it.
  absl::Status create(const std::string& group, const std::string& type, const config::Json& input);

  PgConfigStore& store_;
};

// Status changes of developers, registrations and applications with their effect at the
// gateway, shared by the Admin API (portal_endpoints.cc) and the portal itself (automatic
// approval). Statuses are those of pg_portal.h.
class PortalActions {
 public:
  explicit PortalActions(PgConfigStore& store)
      : store_(store), db_(store.pool()), catalog_(store.pool()), provisioner_(store) {}

  PgPortalStore& db() { return db_; }
  PgCatalogStore& catalog() { return catalog_; }
  Provisioner& provisioner() { return provisioner_; }

  // approved: grant (the version must be published and the developer approved, else
  // kFailedPrecondition); revoked or rejected: revoke what an approval granted; pending:
  // kInvalidArgument. The gateway is changed first, then the row: a failure leaves the old
  // status. kNotFound.
  absl::StatusOr<PortalRegistration> setRegistrationStatus(const std::string& id,
                                                           const std::string& status);
  // Any status but approved ends the developer's sessions, and revoked or rejected also
  // revokes every approved registration of theirs (their keys stop working). kNotFound.
  absl::StatusOr<PortalDeveloper> setDeveloperStatus(const std::string& id,
                                                     const std::string& status);
  // Removes the application's consumers at the gateway, then the application. kNotFound.
  absl::Status deleteApplication(const std::string& id);

 private:
  PgConfigStore& store_;
  PgPortalStore db_;
  PgCatalogStore catalog_;
  Provisioner provisioner_;
};

}  // namespace portico::cp::portal
