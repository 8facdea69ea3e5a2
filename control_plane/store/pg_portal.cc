#include "control_plane/store/pg_portal.h"

#include <cctype>

#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace portico::cp {
namespace pg_portal {
namespace {

#define PORTICO_PORTAL_TS(col) \
  "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

constexpr char kDeveloperColumns[] =
    "d.id::text, d.email, d.name, d.status, " PORTICO_PORTAL_TS("d.created_at") ", " PORTICO_PORTAL_TS(
        "d.updated_at");

constexpr char kApplicationColumns[] =
    "a.id::text, a.developer_id::text, d.email, a.name, a.description, a.api_key, " PORTICO_PORTAL_TS(
        "a.created_at") ", " PORTICO_PORTAL_TS("a.updated_at");

constexpr char kRegistrationSelect[] =
    "SELECT r.id::text, r.application_id::text, a.name, a.developer_id::text, d.email, "
    "r.version_id::text, v.version, v.state, s.id::text, s.name, r.status, " PORTICO_PORTAL_TS(
        "r.created_at") ", " PORTICO_PORTAL_TS("r.updated_at") " FROM portal_registrations r "
    "JOIN portal_applications a ON a.id = r.application_id "
    "JOIN portal_developers d ON d.id = a.developer_id "
    "JOIN catalog_versions v ON v.id = r.version_id "
    "JOIN catalog_services s ON s.id = v.service_id ";

constexpr char kApiSelect[] =
    "SELECT s.id::text, s.name, coalesce(s.display_name, ''), coalesce(s.description, ''), "
    "v.id::text, v.version, v.state, coalesce(v.spec_format, ''), " PORTICO_PORTAL_TS(
        "v.updated_at") " FROM catalog_versions v JOIN catalog_services s ON s.id = v.service_id "
    "WHERE v.state IN ('published', 'deprecated') ";

#undef PORTICO_PORTAL_TS

PortalDeveloper developerFromRow(const pqxx::row& row) {
  PortalDeveloper d;
  d.id = row[0].as<std::string>();
  d.email = row[1].as<std::string>();
  d.name = row[2].as<std::string>();
  d.status = row[3].as<std::string>();
  d.created_at = row[4].as<std::string>();
  d.updated_at = row[5].as<std::string>();
  return d;
}

PortalApplication applicationFromRow(const pqxx::row& row) {
  PortalApplication a;
  a.id = row[0].as<std::string>();
  a.developer_id = row[1].as<std::string>();
  a.developer_email = row[2].as<std::string>();
  a.name = row[3].as<std::string>();
  a.description = row[4].as<std::string>();
  a.api_key = row[5].as<std::string>();
  a.created_at = row[6].as<std::string>();
  a.updated_at = row[7].as<std::string>();
  return a;
}

PortalRegistration registrationFromRow(const pqxx::row& row) {
  PortalRegistration r;
  r.id = row[0].as<std::string>();
  r.application_id = row[1].as<std::string>();
  r.application_name = row[2].as<std::string>();
  r.developer_id = row[3].as<std::string>();
  r.developer_email = row[4].as<std::string>();
  r.version_id = row[5].as<std::string>();
  r.version = row[6].as<std::string>();
  r.version_state = row[7].as<std::string>();
  r.service_id = row[8].as<std::string>();
  r.service_name = row[9].as<std::string>();
  r.status = row[10].as<std::string>();
  r.created_at = row[11].as<std::string>();
  r.updated_at = row[12].as<std::string>();
  return r;
}

PortalApi apiFromRow(const pqxx::row& row) {
  PortalApi a;
  a.service_id = row[0].as<std::string>();
  a.service_name = row[1].as<std::string>();
  a.display_name = row[2].as<std::string>();
  a.description = row[3].as<std::string>();
  a.version_id = row[4].as<std::string>();
  a.version = row[5].as<std::string>();
  a.state = row[6].as<std::string>();
  a.spec_format = row[7].as<std::string>();
  a.updated_at = row[8].as<std::string>();
  return a;
}

std::string pageClause(int size, int number) {
  return absl::StrCat(" LIMIT ", size, " OFFSET ", static_cast<int64_t>(number - 1) * size);
}

// A value compared with a uuid column: anything that is not one matches nothing (instead of
// failing the cast).
bool looksLikeUuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<PortalRegistration> readRegistration(pqxx::transaction_base& txn,
                                                    const std::string& id) {
  const pqxx::result r =
      txn.exec_params(std::string(kRegistrationSelect) + "WHERE r.id = $1::uuid", id);
  if (r.empty()) return absl::NotFoundError("registration");
  return registrationFromRow(r[0]);
}

}  // namespace
}  // namespace pg_portal


absl::StatusOr<PortalSettings> PgPortalStore::settings() {
  PortalSettings out;
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::read_transaction txn(c);
    const pqxx::result r = txn.exec(
        "SELECT auto_approve_developers, auto_approve_registrations, "
        "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
        "FROM portal_settings WHERE id");
    if (!r.empty()) {
      out.auto_approve_developers = r[0][0].as<bool>();
      out.auto_approve_registrations = r[0][1].as<bool>();
      out.updated_at = r[0][2].as<std::string>();
    }
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<PortalSettings> PgPortalStore::updateSettings(
    std::optional<bool> auto_approve_developers, std::optional<bool> auto_approve_registrations) {
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::work txn(c);
    txn.exec_params(
        "INSERT INTO portal_settings (id, auto_approve_developers, auto_approve_registrations) "
        "VALUES (true, coalesce($1, false), coalesce($2, false)) ON CONFLICT (id) DO UPDATE SET "
        "auto_approve_developers = coalesce($1, portal_settings.auto_approve_developers), "
        "auto_approve_registrations = coalesce($2, portal_settings.auto_approve_registrations), "
        "updated_at = now()",
        auto_approve_developers, auto_approve_registrations);
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return settings();
}

absl::StatusOr<PortalDeveloper> PgPortalStore::createDeveloper(const std::string& email,
                                                               const std::string& name,
                                                               const std::string& password_hash,
                                                               const std::string& status) {
  PortalDeveloper out;
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::work txn(c);
    const pqxx::result r = txn.exec_params(
        std::string("WITH d AS (INSERT INTO portal_developers (email, name, password_hash, "
                    "status) VALUES ($1, $2, $3, $4) ON CONFLICT (email) DO NOTHING RETURNING *) "
                    "SELECT ") +
            pg_portal::kDeveloperColumns + " FROM d",
        email, name, password_hash, status);
    if (r.empty()) return absl::AlreadyExistsError("email");
    out = pg_portal::developerFromRow(r[0]);
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<PortalDeveloper> PgPortalStore::findDeveloperByEmail(const std::string& email) {
  PortalDeveloper out;
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::read_transaction txn(c);
    const pqxx::result r = txn.exec_params(std::string("SELECT ") + pg_portal::kDeveloperColumns +
                                               ", d.password_hash FROM portal_developers d "
                                               "WHERE d.email = $1",
                                           email);
    if (r.empty()) return absl::NotFoundError("developer");
    out = pg_portal::developerFromRow(r[0]);
    out.password_hash = r[0][6].as<std::string>();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<PortalDeveloper> PgPortalStore::getDeveloper(const std::string& id) {
  if (!pg_portal::looksLikeUuid(id)) return absl::NotFoundError("developer");
  PortalDeveloper out;
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::read_transaction txn(c);
    const pqxx::result r = txn.exec_params(
        std::string("SELECT ") + pg_portal::kDeveloperColumns + " FROM portal_developers d WHERE d.id = $1",
        id);
    if (r.empty()) return absl::NotFoundError("developer");
    out = pg_portal::developerFromRow(r[0]);
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<PortalPage<PortalDeveloper>> PgPortalStore::listDevelopers(
    const std::string& status, int size, int number) {
  PortalPage<PortalDeveloper> out;
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::read_transaction txn(c);
    const std::string where = " WHERE ($1 = '' OR d.status = $1)";
    for (const auto& row : txn.exec_params(std::string("SELECT ") + pg_portal::kDeveloperColumns +
                                               " FROM portal_developers d" + where +
                                               " ORDER BY d.created_at, d.id" +
                                               pg_portal::pageClause(size, number),
                                           status)) {
      out.items.push_back(pg_portal::developerFromRow(row));
    }
    out.total =
        txn.exec_params1("SELECT count(*) FROM portal_developers d" + where, status)[0]
            .as<uint64_t>();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<PortalDeveloper> PgPortalStore::setDeveloperStatus(const std::string& id,
                                                                  const std::string& status) {
  if (!pg_portal::looksLikeUuid(id)) return absl::NotFoundError("developer");
  PortalDeveloper out;
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::work txn(c);
    const pqxx::result r = txn.exec_params(
        std::string("WITH d AS (UPDATE portal_developers SET status = $2, updated_at = now() "
                    "WHERE id = $1 RETURNING *) SELECT ") +
            pg_portal::kDeveloperColumns + " FROM d",
        id, status);
    if (r.empty()) return absl::NotFoundError("developer");
    out = pg_portal::developerFromRow(r[0]);
    if (status != kPortalApproved) {
      txn.exec_params("DELETE FROM portal_sessions WHERE developer_id = $1", id);
    }
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::Status PgPortalStore::createSession(const std::string& token_hash,
                                          const std::string& developer_id,
                                          const std::string& csrf_token, int64_t ttl_seconds) {
  return pool_.run([&](pqxx::connection& c) {
    pqxx::work txn(c);
    txn.exec_params(
        "INSERT INTO portal_sessions (token_hash, developer_id, csrf_token, expires_at) "
        "VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        token_hash, developer_id, csrf_token, ttl_seconds);
    txn.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<PortalSession> PgPortalStore::getSession(const std::string& token_hash) {
  PortalSession out;
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::read_transaction txn(c);
    const pqxx::result r = txn.exec_params(
        std::string("SELECT ") + pg_portal::kDeveloperColumns +
            ", s.csrf_token, to_char(s.expires_at AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM portal_sessions s JOIN portal_developers d "
            "ON d.id = s.developer_id WHERE s.token_hash = $1 AND s.expires_at > now()",
        token_hash);
    if (r.empty()) return absl::NotFoundError("session");
    out.developer = pg_portal::developerFromRow(r[0]);
    out.csrf_token = r[0][6].as<std::string>();
    out.expires_at = r[0][7].as<std::string>();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::Status PgPortalStore::deleteSession(const std::string& token_hash) {
  return pool_.run([&](pqxx::connection& c) {
    pqxx::work txn(c);
    txn.exec_params("DELETE FROM portal_sessions WHERE token_hash = $1", token_hash);
    txn.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<uint64_t> PgPortalStore::deleteExpiredSessions() {
  uint64_t n = 0;
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::work txn(c);
    n = txn.exec("DELETE FROM portal_sessions WHERE expires_at <= now()").affected_rows();
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return n;
}

absl::StatusOr<PortalApplication> PgPortalStore::createApplication(const PortalApplication& app) {
  PortalApplication out;
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::work txn(c);
    const pqxx::result r = txn.exec_params(
        std::string("WITH a AS (INSERT INTO portal_applications (developer_id, name, "
                    "description, api_key) VALUES ($1, $2, $3, $4) ON CONFLICT (developer_id, "
                    "name) DO NOTHING RETURNING *) SELECT ") +
            pg_portal::kApplicationColumns + " FROM a JOIN portal_developers d ON d.id = a.developer_id",
        app.developer_id, app.name, app.description, app.api_key);
    if (r.empty()) return absl::AlreadyExistsError("name");
    out = pg_portal::applicationFromRow(r[0]);
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<PortalApplication> PgPortalStore::getApplication(const std::string& id) {
  if (!pg_portal::looksLikeUuid(id)) return absl::NotFoundError("application");
  PortalApplication out;
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::read_transaction txn(c);
    const pqxx::result r = txn.exec_params(
        std::string("SELECT ") + pg_portal::kApplicationColumns +
            " FROM portal_applications a JOIN portal_developers d ON d.id = a.developer_id "
            "WHERE a.id = $1",
        id);
    if (r.empty()) return absl::NotFoundError("application");
    out = pg_portal::applicationFromRow(r[0]);
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<PortalPage<PortalApplication>> PgPortalStore::listApplications(
    const std::string& developer_id, int size, int number) {
  PortalPage<PortalApplication> out;
  if (!developer_id.empty() && !pg_portal::looksLikeUuid(developer_id)) return out;
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::read_transaction txn(c);
    const std::string where =
        developer_id.empty() ? " WHERE $1 = ''" : " WHERE a.developer_id = $1::uuid";
    const std::string from =
        " FROM portal_applications a JOIN portal_developers d ON d.id = a.developer_id" + where;
    const pqxx::result r = txn.exec_params(std::string("SELECT ") + pg_portal::kApplicationColumns +
                                               ", count(*) OVER ()" + from +
                                               " ORDER BY a.created_at, a.id" +
                                               pg_portal::pageClause(size, number),
                                           developer_id);
    for (const auto& row : r) {
      out.items.push_back(pg_portal::applicationFromRow(row));
      out.total = row[8].as<uint64_t>();
    }
    if (r.empty() && number > 1) {
      out.total = txn.exec_params1("SELECT count(*)" + from, developer_id)[0].as<uint64_t>();
    }
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::Status PgPortalStore::deleteApplication(const std::string& id) {
  if (!pg_portal::looksLikeUuid(id)) return absl::NotFoundError("application");
  return pool_.run([&](pqxx::connection& c) {
    pqxx::work txn(c);
    if (txn.exec_params("DELETE FROM portal_applications WHERE id = $1", id).affected_rows() ==
        0) {
      return absl::NotFoundError("application");
    }
    txn.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<PortalRegistration> PgPortalStore::createRegistration(
    const std::string& application_id, const std::string& version_id, const std::string& status) {
  if (!pg_portal::looksLikeUuid(application_id) || !pg_portal::looksLikeUuid(version_id)) {
    return absl::NotFoundError("version");
  }
  PortalRegistration out;
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::work txn(c);
    const pqxx::result r = txn.exec_params(
        "INSERT INTO portal_registrations (application_id, version_id, status) "
        "SELECT a.id, v.id, $3 FROM portal_applications a, catalog_versions v "
        "WHERE a.id = $1 AND v.id = $2 ON CONFLICT (application_id, version_id) DO NOTHING "
        "RETURNING id::text",
        application_id, version_id, status);
    if (r.empty()) {
      const bool both = !txn.exec_params("SELECT 1 FROM portal_applications a, catalog_versions v "
                                         "WHERE a.id = $1 AND v.id = $2",
                                         application_id, version_id)
                             .empty();
      return both ? absl::AlreadyExistsError("registration") : absl::NotFoundError("version");
    }
    auto read = pg_portal::readRegistration(txn, r[0][0].as<std::string>());
    if (!read.ok()) return read.status();
    out = *std::move(read);
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<PortalRegistration> PgPortalStore::getRegistration(const std::string& id) {
  if (!pg_portal::looksLikeUuid(id)) return absl::NotFoundError("registration");
  PortalRegistration out;
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::read_transaction txn(c);
    auto read = pg_portal::readRegistration(txn, id);
    if (!read.ok()) return read.status();
    out = *std::move(read);
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<PortalPage<PortalRegistration>> PgPortalStore::listRegistrations(
    const PortalRegistrationQuery& query) {
  PortalPage<PortalRegistration> out;
  if ((!query.application_id.empty() && !pg_portal::looksLikeUuid(query.application_id)) ||
      (!query.developer_id.empty() && !pg_portal::looksLikeUuid(query.developer_id))) {
    return out;
  }
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::read_transaction txn(c);
    const std::string where =
        "WHERE ($1 = '' OR r.application_id::text = $1) AND ($2 = '' OR a.developer_id::text = "
        "$2) AND ($3 = '' OR r.status = $3)";
    const pqxx::result r = txn.exec_params(
        std::string(pg_portal::kRegistrationSelect) + where + " ORDER BY r.created_at, r.id" +
            pg_portal::pageClause(query.size, query.number),
        query.application_id, query.developer_id, query.status);
    for (const auto& row : r) {
      out.items.push_back(pg_portal::registrationFromRow(row));
    }
    out.total = txn.exec_params1(
                       "SELECT count(*) FROM portal_registrations r JOIN portal_applications a "
                       "ON a.id = r.application_id " + where,
                       query.application_id, query.developer_id, query.status)[0]
                    .as<uint64_t>();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<PortalRegistration> PgPortalStore::setRegistrationStatus(
    const std::string& id, const std::string& status) {
  if (!pg_portal::looksLikeUuid(id)) return absl::NotFoundError("registration");
  PortalRegistration out;
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::work txn(c);
    if (txn.exec_params("UPDATE portal_registrations SET status = $2, updated_at = now() "
                        "WHERE id = $1",
                        id, status)
            .affected_rows() == 0) {
      return absl::NotFoundError("registration");
    }
    auto read = pg_portal::readRegistration(txn, id);
    if (!read.ok()) return read.status();
    out = *std::move(read);
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<std::vector<PortalApi>> PgPortalStore::listPublishedApis() {
  std::vector<PortalApi> out;
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::read_transaction txn(c);
    for (const auto& row :
         txn.exec(std::string(pg_portal::kApiSelect) + "ORDER BY s.name, v.version")) {
      out.push_back(pg_portal::apiFromRow(row));
    }
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<PortalApi> PgPortalStore::getPublishedApi(const std::string& service,
                                                         const std::string& version,
                                                         bool with_spec) {
  PortalApi out;
  absl::Status st = pool_.run([&](pqxx::connection& c) {
    pqxx::read_transaction txn(c);
    const pqxx::result r = txn.exec_params(
        std::string(pg_portal::kApiSelect)
                .replace(std::string(pg_portal::kApiSelect).find(" FROM "), 0,
                         with_spec ? ", v.spec" : ", NULL::text") +
            "AND ($1 = '' OR s.name = $1 OR s.id::text = $1) AND (v.version = $2 OR "
            "v.id::text = $2) "
            "ORDER BY (s.name = $1) DESC, (v.version = $2) DESC LIMIT 1",
        service, version);
    if (r.empty()) return absl::NotFoundError("api");
    out = pg_portal::apiFromRow(r[0]);
    if (!r[0][9].is_null()) out.spec = r[0][9].as<std::string>();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

}  // namespace portico::cp
