// PgPortalStore: the Dev Portal's rows in PostgreSQL (migrations/0014_dev_portal): portal
// settings, developers, server-side sessions, applications and their registrations for
// catalog versions, and the published catalog versions the portal shows. Not config: nothing
// here has a generation; what an approval provisions goes through PgConfigStore
// (control_plane/portal/provisioning.h). libpqxx stays in pg_portal.cc; every method blocks,
// so call it from a DB worker thread. Thread-safe (each call takes its own pooled connection).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control_plane/store/pg_pool.h"

namespace portico::cp {

// Timestamps are RFC 3339 UTC strings, as the catalog's.
struct PortalSettings {
  bool auto_approve_developers = false;
  bool auto_approve_registrations = false;
  std::string updated_at;
};

// Statuses of developers and of registrations.
inline constexpr char kPortalPending[] = "pending";
inline constexpr char kPortalApproved[] = "approved";
inline constexpr char kPortalRejected[] = "rejected";
inline constexpr char kPortalRevoked[] = "revoked";

struct PortalDeveloper {
  std::string id;
  std::string email;  // lower-cased
  std::string name;
  std::string status;
  std::string password_hash;  // filled by findDeveloperByEmail only
  std::string created_at, updated_at;
};

struct PortalSession {
  PortalDeveloper developer;
  std::string csrf_token;
  std::string expires_at;
};

struct PortalApplication {
  std::string id;
  std::string developer_id;
  std::string developer_email;  // filled by reads
  std::string name;
  std::string description;
  std::string api_key;
  std::string created_at, updated_at;
};

struct PortalRegistration {
  std::string id;
  std::string application_id, application_name;
  std::string developer_id, developer_email;
  std::string version_id, version, version_state;
  std::string service_id, service_name;
  std::string status;
  std::string created_at, updated_at;
};

// A published (or deprecated) catalog version as the portal lists it.
struct PortalApi {
  std::string service_id, service_name, display_name, description;
  std::string version_id, version, state;
  std::string spec_format;  // "json", "yaml" or "" (no document)
  std::optional<std::string> spec;  // getPublishedApi only
  std::string updated_at;
};

template <class T>
struct PortalPage {
  std::vector<T> items;
  uint64_t total = 0;
};

// Filters of a registration list; empty strings mean "any".
struct PortalRegistrationQuery {
  std::string application_id;
  std::string developer_id;
  std::string status;
  int size = 100;
  int number = 1;
};

class PgPortalStore {
 public:
  // `pool` (the config store's) must outlive this object.
  explicit PgPortalStore(PgPool& pool) : pool_(pool) {}

  absl::StatusOr<PortalSettings> settings();
  absl::StatusOr<PortalSettings> updateSettings(std::optional<bool> auto_approve_developers,
                                                std::optional<bool> auto_approve_registrations);

  // ---- developers ---------------------------------------------------------------------------
  // kAlreadyExists("email") when the email is taken.
  absl::StatusOr<PortalDeveloper> createDeveloper(const std::string& email,
                                                  const std::string& name,
                                                  const std::string& password_hash,
                                                  const std::string& status);
  // With the password hash; kNotFound.
  absl::StatusOr<PortalDeveloper> findDeveloperByEmail(const std::string& email);
  absl::StatusOr<PortalDeveloper> getDeveloper(const std::string& id);  // kNotFound
  absl::StatusOr<PortalPage<PortalDeveloper>> listDevelopers(const std::string& status, int size,
                                                             int number);
  // Any status but approved also ends the developer's sessions. kNotFound.
  absl::StatusOr<PortalDeveloper> setDeveloperStatus(const std::string& id,
                                                     const std::string& status);

  // ---- sessions (by the SHA-256 hex of the cookie's token) ----------------------------------
  absl::Status createSession(const std::string& token_hash, const std::string& developer_id,
                             const std::string& csrf_token, int64_t ttl_seconds);
  // The unexpired session and its developer (any status: the caller decides); kNotFound.
  absl::StatusOr<PortalSession> getSession(const std::string& token_hash);
  absl::Status deleteSession(const std::string& token_hash);
  // Removes expired sessions; how many.
  absl::StatusOr<uint64_t> deleteExpiredSessions();

  // ---- applications -------------------------------------------------------------------------
  // kAlreadyExists("name") when the developer has an application of that name.
  absl::StatusOr<PortalApplication> createApplication(const PortalApplication& app);
  absl::StatusOr<PortalApplication> getApplication(const std::string& id);  // kNotFound
  // `developer_id` empty: every developer's.
  absl::StatusOr<PortalPage<PortalApplication>> listApplications(const std::string& developer_id,
                                                                 int size, int number);
  absl::Status deleteApplication(const std::string& id);  // its registrations go with it

  // ---- registrations ------------------------------------------------------------------------
  // kAlreadyExists when the application is registered for the version already; kNotFound
  // when either is gone.
  absl::StatusOr<PortalRegistration> createRegistration(const std::string& application_id,
                                                        const std::string& version_id,
                                                        const std::string& status);
  absl::StatusOr<PortalRegistration> getRegistration(const std::string& id);  // kNotFound
  absl::StatusOr<PortalPage<PortalRegistration>> listRegistrations(
      const PortalRegistrationQuery& query);
  absl::StatusOr<PortalRegistration> setRegistrationStatus(const std::string& id,
                                                           const std::string& status);

  // ---- what the portal shows ----------------------------------------------------------------
  // Every published or deprecated version, by service name then version.
  absl::StatusOr<std::vector<PortalApi>> listPublishedApis();
  // One of them by service name (or id; "" = any service) and version string (or id), with
  // its document when asked; kNotFound for an unknown or unpublished version.
  absl::StatusOr<PortalApi> getPublishedApi(const std::string& service,
                                            const std::string& version, bool with_spec);

 private:
  PgPool& pool_;
};

}  // namespace portico::cp
