// PgConfigStore's whole-group operations behind POST /config and GET /config: replace every
// entity of a group in one transaction (one generation), and read them all back.
//
// The replace is set-based: per entity type a few statements, each taking the whole list as
// one JSON array parameter, so a 10,000-route file is a handful of round trips rather than
// tens of thousands.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "common/config/entities.h"
#include "common/config/proto_json.h"
#include "common/config/typedefs.h"
#include "control_plane/store/pg_copy.h"
#include "control_plane/store/pg_store_impl.h"
#include "control_plane/store/pg_store_internal.h"

namespace portico::cp {
namespace {

namespace v1 = config::v1;
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

// The new config, staged in a temporary table (dropped at commit or rollback) by one binary
// COPY: the statements below then join it with the entity tables, so PostgreSQL parses each
// entity once. (One JSON array parameter per statement, the first version, parsed the whole
// config three times: 1.3 s of a 10,000-route POST.) `w`: to be written (new, or different);
// `n`: new (no stored entity of the group has its id).
constexpr char kCreateStage[] =
    "CREATE TEMP TABLE portico_config_stage (type text NOT NULL, i int NOT NULL, "
    "w boolean NOT NULL, n boolean NOT NULL, e jsonb NOT NULL, id uuid GENERATED ALWAYS AS ((e->>'id')::uuid) "
    "STORED) ON COMMIT DROP";

// The new config's entity ids, by one COPY before anything else: the deletes below need no
// more than these.
constexpr char kCreateIds[] =
    "CREATE TEMP TABLE portico_config_ids (type text NOT NULL, idt text NOT NULL, id uuid "
    "GENERATED ALWAYS AS (idt::uuid) STORED) ON COMMIT DROP";

// The statements that write `table`'s staged rows for group $1, each with its change_log
// rows (generation $3); $2 is updated_at for entities without one. Each answers the number
// written and one id. New rows are a plain INSERT and rewritten ones (which exist, emptied
// by step 2 of replaceConfig) an UPDATE: an upsert (ON CONFLICT) of 10,000 new routes was
// ~12% slower than the INSERT, all of it speculative insertion. services and routes keep key
// columns beside the JSON (migration 0001), the other tables derive theirs (0002).
struct WriteSql {
  std::string insert;   // the staged rows with n (new)
  std::string rewrite;  // the staged rows with w and not n
};

WriteSql writeSql(const std::string& table) {
  std::vector<std::pair<std::string, std::string>> columns = {
      {"entity", "s.e"},
      {"created_at", "(s.e->>'created_at')::numeric"},
      {"updated_at", "COALESCE((s.e->>'updated_at')::numeric, $2::numeric)"}};
  if (table == "services" || table == "routes") {
    columns.emplace_back("name", "s.e->>'name'");
  }
  if (table == "routes") {
    columns.emplace_back("service_id", "(s.e->'service'->>'id')::uuid");
  }
  std::string names = "group_name, id";
  std::string values = "$1, s.id";
  std::string set;
  for (const auto& [column, value] : columns) {
    names += ", " + column;
    values += ", " + value;
    set += (set.empty() ? "" : ", ") + column + " = " + value;
  }
  const std::string logged = "l AS (INSERT INTO change_log (group_name, generation, entity_type, "
                             "entity_id, op) SELECT $1, $3, '" + table +
                             "', id, 'upsert' FROM u RETURNING entity_id) SELECT count(*), "
                             "min(entity_id::text) FROM l";
  return WriteSql{
      "WITH u AS (INSERT INTO " + table + " (" + names + ") SELECT " + values +
          " FROM portico_config_stage s WHERE s.type = '" + table + "' AND s.n RETURNING id), " +
          logged,
      "WITH u AS (UPDATE " + table + " t SET " + set + " FROM portico_config_stage s WHERE " +
          "s.type = '" + table + "' AND s.w AND NOT s.n AND t.group_name = $1 AND t.id = s.id " +
          "RETURNING t.id), " + logged};
}

// DELETE of `table`'s rows of group $1 the staged config lacks, with their change_log rows
// (generation $2): the number deleted and one id. An anti-join, hashed.
std::string deleteSql(const std::string& table) {
  return "WITH d AS (DELETE FROM " + table + " t WHERE group_name = $1 AND NOT EXISTS "
         "(SELECT 1 FROM portico_config_ids s WHERE s.type = '" + table +
         "' AND s.id = t.id) RETURNING id), l AS (INSERT INTO change_log (group_name, "
         "generation, entity_type, entity_id, op) SELECT $1, $2, '" + table +
         "', id, 'delete' FROM d RETURNING entity_id) SELECT count(*), min(entity_id::text) "
         "FROM l";
}

// From this many changes a replace keeps its decoded snapshot for the sync module. Below
// SyncServerOptions::max_delta_entities (5,000) DPs at the previous generation get a delta,
// but new DPs and DPs further behind get the whole config; a decode of a few thousand
// entities (~5 ms per 1,000, on another thread) is cheap beside reading them back.
constexpr size_t kDecodeFrom = 1000;

// `entities` as loadSnapshot() decodes the rows it reads (each type's JSON through
// jsonToProto; the order does not matter, the sync module sorts by id).
void decodeSnapshot(const std::vector<TypedEntities>& entities, v1::Snapshot* out) {
  const google::protobuf::Descriptor* d = out->GetDescriptor();
  const google::protobuf::Reflection* refl = out->GetReflection();
  for (const TypedEntities& t : entities) {
    const google::protobuf::FieldDescriptor* f = d->FindFieldByName(t.type);
    if (f == nullptr) {
      continue;
    }
    for (const Json& e : t.entities) {
      config::jsonToProto(e, refl->AddMessage(out, f));
    }
  }
}

// What one type's part of the replace found.
struct TypePlan {
  const EntitySchema* schema = nullptr;
  TypedEntities* given = nullptr;      // the new config's (may be null: none)
  std::vector<int> rewrite;            // indexes of existing entities that differ
  std::vector<std::string> rewrite_ids;
  std::vector<char> is_new;            // by index: no stored entity has its id
  bool has_updated_at = false;
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
  EntityIds ids;
  for (const TypedEntities& t : *entities) {
    for (const Json& e : t.entities) {
      auto id = e.find("id");
      if (id != e.end() && id->is_string()) {
        ids.emplace_back(t.type, id->get<std::string>());
      }
    }
  }
  return replaceConfigEarly(group, ids, [entities] { return entities; });
}

absl::StatusOr<ReplaceOutcome> PgConfigStore::replaceConfigEarly(const std::string& group,
                                                                 const EntityIds& ids,
                                                                 const EntitiesSource& source) {
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
      // below is what it replaces, and its generation is the next one.
      const pqxx::result g = detail::execPrepared(
          txn, "SELECT generation, epoch::text FROM groups WHERE name = $1 FOR UPDATE", group);
      if (g.empty()) {
        return detail::groupNotFound(group);
      }
      out.generation = g[0][0].as<uint64_t>();
      const std::string epoch = g[0][1].as<std::string>();
      const uint64_t next = out.generation + 1;
      const auto now = std::chrono::system_clock::now().time_since_epoch();
      const Json now_int =
          static_cast<int64_t>(std::chrono::duration_cast<std::chrono::seconds>(now).count());
      const Json now_float = std::floor(std::chrono::duration<double>(now).count() * 1000) / 1000;

      // 1. Entities the new config lacks, children first (the database's ON DELETE CASCADE
      // would take some along, but every one needs its change_log row), found by id alone:
      // with replaceConfigEarly() this runs while the caller still validates the new config.
      // 4. below writes new and different ones, parents first. Each statement logs its own
      // changes under the next generation.
      std::optional<detail::Change> probe_change;
      const auto count = [&](const pqxx::result& r, const std::string& table, const char* op) {
        const uint64_t n = r[0][0].as<uint64_t>();
        if (n > 0 && !probe_change) {
          probe_change = detail::Change{table, r[0][1].as<std::string>(), op};
        }
        return n;
      };
      txn.exec(kCreateIds);
      {
        detail::BinaryCopy copy(txn, "portico_config_ids (type, idt)");
        for (const auto& [type, id] : ids) {
          if (config::isUuid(id)) {  // any other can match no stored row (and the load fails)
            copy.row(2);
            copy.text(type);
            copy.text(id);
          }
        }
        copy.complete();
      }
      const std::vector<std::string>& order = typesParentsFirst();
      for (auto it = order.rbegin(); it != order.rend(); ++it) {
        out.deleted +=
            count(detail::execPrepared(txn, deleteSql(*it), group, next), *it, "delete");
      }
      std::vector<TypedEntities>* entities = source();
      if (entities == nullptr) {
        return absl::CancelledError("the new config was not valid");  // rolled back
      }
      for (const TypedEntities& t : *entities) {
        if (config::findEntitySchema(t.type) == nullptr) {
          return absl::InvalidArgumentError("unknown entity type '" + t.type + "'");
        }
      }

      std::vector<TypePlan> plans;
      for (const std::string& type : typesParentsFirst()) {
        TypePlan plan;
        plan.schema = config::findEntitySchema(type);
        for (TypedEntities& t : *entities) {
          if (t.type == type) {
            plan.given = &t;
          }
        }
        plan.has_updated_at =
            std::any_of(plan.schema->fields.begin(), plan.schema->fields.end(),
                        [](const config::Field& f) { return f.name == "updated_at"; });
        plans.push_back(std::move(plan));
      }

      // 2. Timestamps: an entity that exists keeps its created_at (and, if it turns out
      // unchanged, its updated_at); a new one takes the file's created_at or now. Then each
      // entity's JSON text, as it will be stored, staged by one COPY.
      for (TypePlan& plan : plans) {
        if (plan.given == nullptr || plan.given->entities.empty()) {
          continue;
        }
        std::vector<Json>& list = plan.given->entities;
        absl::flat_hash_map<std::string, std::pair<std::string, std::string>> stored;
        for (const auto& row : detail::execPrepared(
                 txn, "SELECT id::text, entity->'created_at', entity->'updated_at' FROM " +
                          plan.schema->name + " WHERE group_name = $1",
                 group)) {
          stored.emplace(row[0].as<std::string>(),
                         std::make_pair(row[1].is_null() ? "" : row[1].as<std::string>(),
                                        row[2].is_null() ? "" : row[2].as<std::string>()));
        }
        const Json& now_value = plan.schema->float_timestamps ? now_float : now_int;
        std::vector<std::string>& texts = plan.given->stored_text;
        texts.clear();
        texts.reserve(list.size());
        plan.is_new.assign(list.size(), 0);
        for (size_t i = 0; i < list.size(); ++i) {
          Json& e = list[i];
          auto it = stored.find(e["id"].get<std::string>());
          if (it != stored.end()) {
            if (!it->second.first.empty()) {
              e["created_at"] = Json::parse(it->second.first);
            }
            if (!it->second.second.empty()) {
              e["updated_at"] = Json::parse(it->second.second);
            }
          } else {
            plan.is_new[i] = 1;
            if (!e["created_at"].is_number()) {
              e["created_at"] = now_value;
            }
            if (plan.has_updated_at) {
              e["updated_at"] = now_value;
            }
          }
          texts.push_back(e.dump());
        }
      }
      txn.exec(kCreateStage);
      {
        // No other statement may run on the connection until the COPY completes.
        detail::BinaryCopy copy(txn, "portico_config_stage (type, i, w, n, e)");
        for (const TypePlan& plan : plans) {
          if (plan.given == nullptr) {
            continue;
          }
          const std::vector<std::string>& texts = plan.given->stored_text;
          for (size_t i = 0; i < texts.size(); ++i) {
            copy.row(5);
            copy.text(plan.schema->name);
            copy.i32(static_cast<int32_t>(i));
            copy.boolean(plan.is_new[i] != 0);
            copy.boolean(plan.is_new[i] != 0);
            copy.jsonb(texts[i]);
          }
        }
        copy.complete();
      }
      // No ANALYZE (80 ms for 20,000 rows): a never-analyzed table's row count is estimated
      // from its size, enough for the hash joins below.

      // 3. Existing entities that differ (jsonb compares content: key order, 1 and 1.0 alike),
      // timestamps left out. They get updated_at now, and are emptied down to their id before
      // anything is written: their unique keys and references (generated columns, routes' key
      // columns) become NULL, so the new contents can take keys another row gives up in the
      // same replace (two services swapping names) and point at new parents as the old go.
      for (TypePlan& plan : plans) {
        if (plan.given == nullptr || plan.given->entities.empty()) {
          continue;
        }
        const std::string& table = plan.schema->name;
        for (const auto& row : detail::execPrepared(
                 txn,
                 "SELECT s.i FROM portico_config_stage s JOIN " + table +
                     " c ON c.group_name = $1 AND c.id = s.id WHERE s.type = '" + table +
                     "' AND (c.entity - 'created_at' - 'updated_at') <> "
                     "(s.e - 'created_at' - 'updated_at')",
                 group)) {
          const int i = row[0].as<int>();
          Json& e = plan.given->entities[static_cast<size_t>(i)];
          if (plan.has_updated_at) {
            e["updated_at"] = plan.schema->float_timestamps ? now_float : now_int;
            plan.given->stored_text[static_cast<size_t>(i)] = e.dump();
          }
          plan.rewrite.push_back(i);
          plan.rewrite_ids.push_back(e["id"].get<std::string>());
        }
        if (plan.rewrite.empty()) {
          continue;
        }
        std::string indexes = "{";
        for (size_t n = 0; n < plan.rewrite.size(); ++n) {
          if (n > 0) {
            indexes += ',';
          }
          indexes += std::to_string(plan.rewrite[n]);
        }
        indexes += '}';
        const Json& now_value = plan.schema->float_timestamps ? now_float : now_int;
        if (plan.has_updated_at) {
          detail::execPrepared(txn,
                               "UPDATE portico_config_stage SET w = true, e = e || "
                               "jsonb_build_object('updated_at', $3::jsonb) WHERE type = $1 AND "
                               "i IN (SELECT unnest($2::int[]))",
                               table, indexes, now_value.dump());
        } else {
          detail::execPrepared(txn,
                               "UPDATE portico_config_stage SET w = true WHERE type = $1 AND "
                               "i IN (SELECT unnest($2::int[]))",
                               table, indexes);
        }
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

      // Every entity's JSON is final. When the replace changes more than the sync module sends
      // as a delta, another thread decodes the new config as loadSnapshot() decodes rows,
      // while PostgreSQL runs the inserts below (the longest statements).
      size_t changes = out.deleted;
      for (const TypePlan& plan : plans) {
        changes += plan.rewrite.size() +
                   static_cast<size_t>(std::count(plan.is_new.begin(), plan.is_new.end(), 1));
      }
      std::unique_ptr<v1::Snapshot> committed;
      std::thread decoder;
      if (changes >= kDecodeFrom) {
        committed = std::make_unique<v1::Snapshot>();
        decoder = std::thread([&committed, entities] {
          decodeSnapshot(*entities, committed.get());
        });
      }
      absl::Cleanup join_decoder = [&decoder] {
        if (decoder.joinable()) {
          decoder.join();
        }
      };
      for (TypePlan& plan : plans) {
        if (plan.given == nullptr || plan.given->entities.empty()) {
          continue;
        }
        const std::string& table = plan.schema->name;
        const std::string now_text =
            (plan.schema->float_timestamps ? now_float : now_int).dump();
        const WriteSql sql = writeSql(table);
        if (!plan.rewrite.empty()) {
          out.upserted += count(detail::execPrepared(txn, sql.rewrite, group, now_text, next),
                                table, "upsert");
        }
        if (std::find(plan.is_new.begin(), plan.is_new.end(), 1) != plan.is_new.end()) {
          out.upserted += count(detail::execPrepared(txn, sql.insert, group, now_text, next),
                                table, "upsert");
        }
      }

      if (!probe_change) {
        return absl::OkStatus();  // the same config: rolled back, no generation bump
      }
      const pqxx::result bumped = detail::execPrepared(
          txn,
          "WITH g AS (UPDATE groups SET generation = generation + 1 WHERE name = $1 "
          "RETURNING generation) SELECT generation, pg_notify($2, $1 || ':' || generation), "
          "txid_current() FROM g",
          group, detail::kNotifyChannel);
      if (bumped.empty() || bumped[0][0].as<uint64_t>() != next) {
        // Cannot happen while the row lock is held; never commit change_log rows that name
        // another generation.
        throw std::runtime_error("the group's generation moved under its row lock");
      }
      const uint64_t txid = bumped[0][2].as<uint64_t>();
      const int backend_pid = conn.backendpid();
      out.changed = true;
      out.generation = next;
      std::move(join_decoder).Invoke();
      if (committed != nullptr) {
        committed->set_generation(next);
        committed->set_epoch(epoch);
        committed->set_group(group);
      }
      if (absl::Status c = detail::commitOrDoubt(txn, pool_.dsn()); !c.ok()) {
        doubt = detail::CommitProbe{txid, backend_pid, group, next, *probe_change};
        return c;
      }
      absl::MutexLock lock(&committed_mu_);
      // One kept snapshot in all, the newest: a group without connected DPs is not read
      // (its kept snapshot would wait), and one per group could hold a 32 MiB file's config
      // for each of many groups. An older generation's is never served, only memory.
      committed_.clear();
      if (committed != nullptr) {
        committed_[group] = std::move(committed);
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
