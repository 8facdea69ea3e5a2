// PgConfigStore's groups (Konnect "control planes") and Admin API token rows.
#include "common/config/validate.h"
#include "control_plane/store/pg_store_impl.h"

namespace portico::cp {
namespace {

using config::Json;

constexpr char kGroupColumns[] =
    "id::text, name, description, labels::text, "
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), generation";

GroupRecord groupFromRow(const pqxx::row& row) {
  GroupRecord g;
  g.id = row[0].as<std::string>();
  g.name = row[1].as<std::string>();
  if (!row[2].is_null()) {
    g.description = row[2].as<std::string>();
  }
  g.labels = Json::parse(row[3].c_str());
  g.created_at = row[4].as<std::string>();
  g.updated_at = row[5].as<std::string>();
  g.generation = row[6].as<uint64_t>();
  return g;
}

constexpr char kAdminColumns[] =
    "id::text, name, role, key_id, salt, token_hash, "
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
    "revoked_at IS NOT NULL";

AdminRecord adminFromRow(const pqxx::row& row) {
  AdminRecord a;
  a.id = row[0].as<std::string>();
  a.name = row[1].as<std::string>();
  a.role = row[2].as<std::string>();
  a.key_id = row[3].as<std::string>();
  a.salt = row[4].as<std::string>();
  a.token_hash = row[5].as<std::string>();
  a.created_at = row[6].as<std::string>();
  a.revoked = row[7].as<bool>();
  return a;
}

}  // namespace

absl::StatusOr<std::vector<GroupRecord>> PgConfigStore::listGroups() {
  std::vector<GroupRecord> out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    for (const auto& row :
         txn.exec(std::string("SELECT ") + kGroupColumns + " FROM groups ORDER BY name")) {
      out.push_back(groupFromRow(row));
    }
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return out;
}

absl::StatusOr<GroupRecord> PgConfigStore::getGroup(const std::string& id_or_name) {
  GroupRecord out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::nontransaction txn(conn);  // one statement
    const pqxx::result r = txn.exec_params(
        std::string("SELECT ") + kGroupColumns + " FROM groups WHERE " +
            (config::isUuid(id_or_name) ? "id = $1::uuid" : "name = $1"),
        id_or_name);
    if (r.empty()) {
      return absl::NotFoundError("group not found");
    }
    out = groupFromRow(r[0]);
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return out;
}

absl::StatusOr<GroupRecord> PgConfigStore::createGroup(const GroupRecord& group) {
  GroupRecord out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    // ON CONFLICT DO NOTHING: a taken name answers no row instead of aborting on the
    // constraint, so racing creators get one success and clean conflicts.
    const pqxx::result r = txn.exec_params(
        std::string("INSERT INTO groups (name, id, description, labels) VALUES "
                    "($1, COALESCE($2::uuid, gen_random_uuid()), $3, $4::jsonb) "
                    "ON CONFLICT DO NOTHING RETURNING ") +
            kGroupColumns,
        group.name, group.id.empty() ? nullptr : group.id.c_str(),
        group.description ? group.description->c_str() : nullptr, group.labels.dump());
    if (r.empty()) {
      return absl::AlreadyExistsError("name");
    }
    out = groupFromRow(r[0]);
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return out;
}

absl::StatusOr<GroupRecord> PgConfigStore::updateGroup(const std::string& name,
                                                       const Json& patch) {
  GroupRecord out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    const bool set_description = patch.contains("description");
    const bool set_labels = patch.contains("labels");
    const std::string description =
        set_description && patch["description"].is_string() ? patch["description"].get<std::string>()
                                                            : "";
    const pqxx::result r = txn.exec_params(
        std::string("UPDATE groups SET updated_at = now(), "
                    "description = CASE WHEN $2 THEN $3 ELSE description END, "
                    "labels = CASE WHEN $4 THEN $5::jsonb ELSE labels END "
                    "WHERE name = $1 RETURNING ") +
            kGroupColumns,
        name, set_description,
        set_description && patch["description"].is_string() ? description.c_str() : nullptr,
        set_labels, set_labels ? patch["labels"].dump() : std::string("{}"));
    if (r.empty()) {
      return absl::NotFoundError("group not found");
    }
    out = groupFromRow(r[0]);
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return out;
}

absl::Status PgConfigStore::deleteGroup(const std::string& name) {
  if (name == "default") {
    return absl::FailedPreconditionError("the default control plane cannot be deleted");
  }
  return pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    // The group's row lock first (as every writer takes it), then its rows, children before
    // parents (routes -> services is ON DELETE RESTRICT). Every entity table: since migration
    // 0012 they have no foreign key to groups that would cascade.
    if (txn.exec_params("SELECT 1 FROM groups WHERE name = $1 FOR UPDATE", name).empty()) {
      return absl::NotFoundError("group not found");
    }
    const std::vector<std::string>& parents_first = typesParentsFirst();
    for (auto table = parents_first.rbegin(); table != parents_first.rend(); ++table) {
      txn.exec_params("DELETE FROM " + *table + " WHERE group_name = $1", name);
    }
    txn.exec_params("DELETE FROM change_log WHERE group_name = $1", name);
    txn.exec_params("DELETE FROM groups WHERE name = $1", name);
    txn.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<AdminRecord> PgConfigStore::createAdmin(const AdminRecord& admin) {
  AdminRecord out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    const pqxx::result r = txn.exec_params(
        std::string("INSERT INTO admins (name, role, key_id, salt, token_hash) "
                    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING ") +
            kAdminColumns,
        admin.name, admin.role, admin.key_id, admin.salt, admin.token_hash);
    if (r.empty()) {
      return absl::AlreadyExistsError("an active admin named '" + admin.name + "' exists");
    }
    out = adminFromRow(r[0]);
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return out;
}

absl::StatusOr<std::vector<AdminRecord>> PgConfigStore::listAdmins() {
  std::vector<AdminRecord> out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    for (const auto& row : txn.exec(std::string("SELECT ") + kAdminColumns +
                                    " FROM admins ORDER BY created_at, name")) {
      out.push_back(adminFromRow(row));
    }
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return out;
}

absl::Status PgConfigStore::revokeAdmin(const std::string& name_or_id) {
  return pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    const pqxx::result r = txn.exec_params(
        std::string("UPDATE admins SET revoked_at = now() WHERE revoked_at IS NULL AND ") +
            (config::isUuid(name_or_id) ? "id = $1::uuid" : "name = $1") + " RETURNING 1",
        name_or_id);
    if (r.empty()) {
      return absl::NotFoundError("no active admin '" + name_or_id + "'");
    }
    txn.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<AdminRecord> PgConfigStore::findAdminByKeyId(const std::string& key_id) {
  AdminRecord out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::nontransaction txn(conn);  // one statement
    const pqxx::result r = txn.exec_params(std::string("SELECT ") + kAdminColumns +
                                               " FROM admins WHERE key_id = $1 AND "
                                               "revoked_at IS NULL",
                                           key_id);
    if (r.empty()) {
      return absl::NotFoundError("no such token");
    }
    out = adminFromRow(r[0]);
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return out;
}

}  // namespace portico::cp
