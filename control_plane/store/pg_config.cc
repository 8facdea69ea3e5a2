// PgConfigStore's whole-group operations behind POST /config and GET /config: replace every
// entity of a group in one transaction (one generation), and read them all back.
//
// The replace is set-based: per entity type a few statements, each taking the whole list as
// one JSON array parameter, so a 10,000-route file is a handful of round trips rather than
// tens of thousands.
#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/config/entities.h"
#include "control_plane/store/pg_store_impl.h"
#include "control_plane/store/pg_store_internal.h"

namespace portico::cp {
namespace {

using config::EntitySchema;
using config::Json;

// PostgreSQL array literal of UUIDs ("{a,b}"); ids were validated as UUIDs by the loader.
std::string uuidArray(const std::vector<std::string>& ids) {
  std::string out = "{";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    out += ids[i];
  }
  out += '}';
  return out;
}

// INSERT of the JSON array $2 into `table` for group $1, replacing rows of the same id;
// $3 is updated_at for entities without one. services and routes keep key columns beside the
// JSON (migration 0001), the other tables derive theirs (0002).
std::string bulkUpsertSql(const std::string& table) {
  const std::string ts =
      "(e->>'created_at')::numeric, COALESCE((e->>'updated_at')::numeric, $3::numeric) "
      "FROM jsonb_array_elements($2::jsonb) e ON CONFLICT (group_name, id) DO UPDATE SET "
      "entity = EXCLUDED.entity, created_at = EXCLUDED.created_at, "
      "updated_at = EXCLUDED.updated_at";
  if (table == "services") {
    return "INSERT INTO services (group_name, id, name, entity, created_at, updated_at) "
           "SELECT $1, (e->>'id')::uuid, e->>'name', e, " + ts + ", name = EXCLUDED.name";
  }
  if (table == "routes") {
    return "INSERT INTO routes (group_name, id, name, service_id, entity, created_at, "
           "updated_at) SELECT $1, (e->>'id')::uuid, e->>'name', (e->'service'->>'id')::uuid, "
           "e, " + ts + ", name = EXCLUDED.name, service_id = EXCLUDED.service_id";
  }
  return "INSERT INTO " + table +
         " (group_name, id, entity, created_at, updated_at) SELECT $1, (e->>'id')::uuid, e, " +
         ts;
}

// What one type's part of the replace found and will do.
struct TypePlan {
  const EntitySchema* schema = nullptr;
  std::vector<Json>* entities = nullptr;  // the new config's (may be null: none)
  std::vector<size_t> write;              // indexes into *entities: new or different
  std::vector<std::string> rewrite_ids;   // ids of existing rows among `write`
};

}  // namespace

const std::vector<std::string>& PgConfigStore::typesParentsFirst() {
  static const auto* const kOrder = [] {
    auto* out = new std::vector<std::string>;
    std::vector<const EntitySchema*> left = config::allEntitySchemas();
    const auto placed = [&](const std::string& type) {
      return std::find(out->begin(), out->end(), type) != out->end() ||
             config::findEntitySchema(type) == nullptr;
    };
    while (!left.empty()) {
      bool progressed = false;
      for (auto it = left.begin(); it != left.end();) {
        bool ready = true;
        for (const config::Field* fk : (*it)->foreignFields()) {
          ready = ready && (fk->reference == (*it)->name || placed(fk->reference));
        }
        if (ready) {
          out->push_back((*it)->name);
          it = left.erase(it);
          progressed = true;
        } else {
          ++it;
        }
      }
      if (!progressed) {  // a reference cycle between types: none today; keep schema order
        for (const EntitySchema* s : left) {
          out->push_back(s->name);
        }
        break;
      }
    }
    return out;
  }();
  return *kOrder;
}

absl::StatusOr<ReplaceOutcome> PgConfigStore::replaceConfig(
    const std::string& group, std::vector<TypedEntities>* entities) {
  for (const TypedEntities& t : *entities) {
    if (config::findEntitySchema(t.type) == nullptr) {
      return absl::InvalidArgumentError("unknown entity type '" + t.type + "'");
    }
  }
  ReplaceOutcome out;
  absl::Status st;
  std::optional<detail::CommitProbe> doubt;  // the COMMIT got no answer
  // Deadlocks with a concurrent writer of the group (it inserted before this took the row
  // lock, then waits for it) are broken by PostgreSQL aborting one side; this side retries.
  for (int attempt = 0; attempt < 3; ++attempt) {
    out = ReplaceOutcome{};
    st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
      pqxx::work txn(conn);
      // The group's row lock first: every writer of the group (group-commit batches in
      // finishWrite, deletes in bumpGeneration) queues behind this replace, so what it reads
      // below is what it replaces.
      const pqxx::result g = detail::execPrepared(
          txn, "SELECT generation FROM groups WHERE name = $1 FOR UPDATE", group);
      if (g.empty()) {
        return detail::groupNotFound(group);
      }
      out.generation = g[0][0].as<uint64_t>();
      const auto now = std::chrono::system_clock::now().time_since_epoch();
      const Json now_int =
          static_cast<int64_t>(std::chrono::duration_cast<std::chrono::seconds>(now).count());
      const Json now_float = std::floor(std::chrono::duration<double>(now).count() * 1000) / 1000;

      std::vector<TypePlan> plans;
      for (const std::string& type : typesParentsFirst()) {
        TypePlan plan;
        plan.schema = config::findEntitySchema(type);
        for (TypedEntities& t : *entities) {
          if (t.type == type) {
            plan.entities = &t.entities;
          }
        }
        plans.push_back(std::move(plan));
      }

      // 1. What differs: each new entity against the stored one of its id. jsonb compares
      // objects by content (key order, 1 vs 1.0 alike), timestamps left out.
      for (TypePlan& plan : plans) {
        if (plan.entities == nullptr || plan.entities->empty()) {
          continue;
        }
        std::vector<Json>& list = *plan.entities;
        std::string array = "[";
        for (size_t i = 0; i < list.size(); ++i) {
          if (i > 0) {
            array += ',';
          }
          array += list[i].dump();
        }
        array += ']';
        const pqxx::result r = detail::execPrepared(
            txn,
            "SELECT x.i - 1, c.entity->'created_at', c.entity->'updated_at', "
            "(c.entity - 'created_at' - 'updated_at') = (x.e - 'created_at' - 'updated_at') "
            "FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS x(e, i) JOIN " +
                plan.schema->name +
                " c ON c.group_name = $1 AND c.id = (x.e->>'id')::uuid",
            group, array);
        std::vector<char> exists(list.size(), 0);
        const Json& now_value = plan.schema->float_timestamps ? now_float : now_int;
        const bool has_updated_at = [&] {
          return std::any_of(plan.schema->fields.begin(), plan.schema->fields.end(),
                             [](const config::Field& f) { return f.name == "updated_at"; });
        }();
        for (const auto& row : r) {
          const size_t i = row[0].as<size_t>();
          exists[i] = 1;
          Json& e = list[i];
          if (!row[1].is_null()) {
            e["created_at"] = Json::parse(row[1].c_str());
          }
          if (row[3].as<bool>()) {
            if (!row[2].is_null()) {
              e["updated_at"] = Json::parse(row[2].c_str());
            }
            continue;  // identical: not written
          }
          if (has_updated_at) {
            e["updated_at"] = now_value;
          }
          plan.write.push_back(i);
          plan.rewrite_ids.push_back(e["id"].get<std::string>());
        }
        for (size_t i = 0; i < list.size(); ++i) {
          if (exists[i]) {
            continue;
          }
          Json& e = list[i];
          if (!e["created_at"].is_number()) {
            e["created_at"] = now_value;
          }
          if (has_updated_at) {
            e["updated_at"] = now_value;
          }
          plan.write.push_back(i);
        }
      }

      // 2. Rows that stay but change are emptied first, down to their id: their unique keys
      // and references (generated columns, routes' key columns) become NULL, so the new
      // contents can take keys another row gives up in the same replace (two services
      // swapping names) and point at new parents while the old ones go.
      for (TypePlan& plan : plans) {
        if (plan.rewrite_ids.empty()) {
          continue;
        }
        const std::string& table = plan.schema->name;
        const std::string keys = table == "services" ? ", name = NULL"
                                 : table == "routes" ? ", name = NULL, service_id = NULL"
                                                     : "";
        detail::execPrepared(txn,
                             "UPDATE " + table + " SET entity = jsonb_build_object('id', id)" +
                                 keys +
                                 " WHERE group_name = $1 AND id IN "
                                 "(SELECT unnest($2::uuid[]))",
                             group, uuidArray(plan.rewrite_ids));
      }

      std::vector<detail::Change> changes;
      // 3. Entities the new config lacks, children first (the database's ON DELETE CASCADE
      // would take some of them along, but every one needs its change_log row).
      for (auto it = plans.rbegin(); it != plans.rend(); ++it) {
        std::vector<std::string> keep;
        if (it->entities != nullptr) {
          keep.reserve(it->entities->size());
          for (const Json& e : *it->entities) {
            keep.push_back(e["id"].get<std::string>());
          }
        }
        const std::string& table = it->schema->name;
        // An anti-join (hashed), not `id <> ALL(array)`: that compares every row with every
        // kept id.
        const pqxx::result r = detail::execPrepared(
            txn,
            "DELETE FROM " + table + " t WHERE group_name = $1 AND NOT EXISTS "
            "(SELECT 1 FROM unnest($2::uuid[]) k(id) WHERE k.id = t.id) RETURNING id::text",
            group, uuidArray(keep));
        for (const auto& row : r) {
          changes.push_back({table, row[0].as<std::string>(), "delete"});
        }
        out.deleted += r.size();
      }

      // 4. New and changed entities, parents first.
      for (TypePlan& plan : plans) {
        if (plan.write.empty()) {
          continue;
        }
        const std::string& table = plan.schema->name;
        std::string array = "[";
        for (size_t n = 0; n < plan.write.size(); ++n) {
          if (n > 0) {
            array += ',';
          }
          const Json& e = (*plan.entities)[plan.write[n]];
          array += e.dump();
          changes.push_back({table, e["id"].get<std::string>(), "upsert"});
        }
        array += ']';
        const Json& now_value = plan.schema->float_timestamps ? now_float : now_int;
        detail::execPrepared(txn, bulkUpsertSql(table), group, array, now_value.dump());
        out.upserted += plan.write.size();
      }

      if (changes.empty()) {
        return absl::OkStatus();  // the same config: rolled back, no generation bump
      }
      uint64_t txid = 0;
      const std::optional<uint64_t> generation = detail::finishWrite(txn, group, changes, &txid);
      if (!generation) {
        return detail::groupNotFound(group);
      }
      const int backend_pid = conn.backendpid();
      out.changed = true;
      out.generation = *generation;
      if (absl::Status c = detail::commitOrDoubt(txn, pool_.dsn()); !c.ok()) {
        doubt = detail::CommitProbe{txid, backend_pid, group, *generation, changes.front()};
        return c;
      }
      return absl::OkStatus();
    });
    if (!absl::IsAborted(st)) {
      break;
    }
  }
  if (doubt) {
    if (absl::Status outcome = resolveCommit(*doubt, st); !outcome.ok()) {
      return outcome;
    }
    return out;
  }
  if (!st.ok()) {
    return st;
  }
  return out;
}

absl::StatusOr<ConfigExport> PgConfigStore::exportConfig(const std::string& group) {
  ConfigExport out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    out = ConfigExport{};
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> txn(conn);
    const pqxx::result g =
        detail::execPrepared(txn, "SELECT generation FROM groups WHERE name = $1", group);
    if (g.empty()) {
      return detail::groupNotFound(group);
    }
    out.generation = g[0][0].as<uint64_t>();
    for (const std::string& type : typesParentsFirst()) {
      std::vector<std::string> rows;
      for (const auto& row : detail::execPrepared(
               txn, "SELECT entity::text FROM " + type + " WHERE group_name = $1 ORDER BY id",
               group)) {
        rows.emplace_back(row[0].c_str(), row[0].size());
      }
      out.by_type.emplace_back(type, std::move(rows));
    }
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return out;
}

}  // namespace portico::cp
