#include "control_plane/store/pg_store_impl.h"

#include <ctime>

#include "common/config/proto_json.h"
#include "common/config/validate.h"
#include "common/logging.h"
#include "control_plane/store/pg_store_internal.h"

namespace portico::cp {
namespace {
constexpr const char* kChannel = detail::kNotifyChannel;
}  // namespace

namespace detail {

using config::Json;

// Bumps and returns the group's generation; first statement of every write transaction, so
// writers of a group queue on its row in one order (no deadlocks) and generation order is
// commit order.
std::optional<uint64_t> bumpGeneration(pqxx::work& txn, const std::string& group,
                                       uint64_t* txid) {
  const pqxx::result r = txn.exec_params(
      "UPDATE groups SET generation = generation + 1 WHERE name = $1 "
      "RETURNING generation, txid_current()",
      group);
  if (r.empty()) {
    return std::nullopt;
  }
  if (txid != nullptr) {
    *txid = r[0][1].as<uint64_t>();
  }
  return r[0][0].as<uint64_t>();
}

void logChangeAndNotify(pqxx::work& txn, const std::string& group, uint64_t generation,
                        const char* type, const std::string& id, const char* op) {
  txn.exec_params(
      "INSERT INTO change_log (group_name, generation, entity_type, entity_id, op) "
      "VALUES ($1, $2, $3, $4::uuid, $5)",
      group, generation, type, id, op);
  // pg_notify is transactional: delivered to listeners only if and when this commits.
  txn.exec_params("SELECT pg_notify($1, $2)", kChannel, group + ":" + std::to_string(generation));
}

std::optional<uint64_t> finishWrite(pqxx::work& txn, const std::string& group,
                                    const std::vector<Change>& changes, uint64_t* txid) {
  Json list = Json::array();
  for (const Change& c : changes) {
    list.push_back(Json{{"t", c.type}, {"i", c.id}, {"o", c.op}});
  }
  // A data-modifying CTE runs whether or not the outer query reads it.
  const pqxx::result r = execPrepared(txn,
      "WITH g AS (UPDATE groups SET generation = generation + 1 WHERE name = $1 "
      "RETURNING generation), "
      "l AS (INSERT INTO change_log (group_name, generation, entity_type, entity_id, op) "
      "SELECT $1, g.generation, c.t, c.i::uuid, c.o FROM g, "
      "jsonb_to_recordset($2::jsonb) AS c(t text, i text, o text)) "
      "SELECT generation, pg_notify($3, $1 || ':' || generation), txid_current() FROM g",
      group, list.dump(), kChannel);
  if (r.empty()) {
    return std::nullopt;
  }
  if (txid != nullptr) {
    *txid = r[0][2].as<uint64_t>();
  }
  return r[0][0].as<uint64_t>();
}

}  // namespace detail

namespace {

using detail::bumpGeneration;
using detail::logChangeAndNotify;
using detail::groupNotFound;

namespace v1 = config::v1;
using config::Json;

// What differs between entity tables; everything else is shared below.
template <class T>
struct Entity;

template <>
struct Entity<v1::Service> {
  static constexpr const char* kTable = "services";
  static constexpr const char* kUpsertSql =
      "INSERT INTO services (group_name, id, name, entity, created_at, updated_at) "
      // $4 (a route's service_id) is always NULL here; it is referenced so every entity
      // binds the same parameter list.
      "SELECT $1, $2::uuid, $3, $5::jsonb, $6, $7 WHERE $4::uuid IS NULL "
      "ON CONFLICT (group_name, id) DO UPDATE SET name = EXCLUDED.name, "
      "entity = EXCLUDED.entity, updated_at = EXCLUDED.updated_at";
  static const char* serviceId(const v1::Service&) { return nullptr; }
  static Json encode(const v1::Service& s) { return config::protoToJson(s); }
  static v1::Service decode(const Json& j) {
    v1::Service s;
    config::jsonToProto(j, &s);  // stored entities were validated on write
    return s;
  }
};

template <>
struct Entity<v1::Route> {
  static constexpr const char* kTable = "routes";
  static constexpr const char* kUpsertSql =
      "INSERT INTO routes (group_name, id, name, service_id, entity, created_at, updated_at) "
      "VALUES ($1, $2::uuid, $3, $4::uuid, $5::jsonb, $6, $7) "
      "ON CONFLICT (group_name, id) DO UPDATE SET name = EXCLUDED.name, "
      "service_id = EXCLUDED.service_id, entity = EXCLUDED.entity, "
      "updated_at = EXCLUDED.updated_at";
  static const char* serviceId(const v1::Route& r) {
    return r.has_service_id() ? r.service_id().c_str() : nullptr;
  }
  static Json encode(const v1::Route& r) { return config::protoToJson(r); }
  static v1::Route decode(const Json& j) {
    v1::Route r;
    config::jsonToProto(j, &r);
    return r;
  }
};

template <class T>
absl::StatusOr<Written<T>> writeEntity(PgPool& pool, const std::string& group, T entity,
                                       WriteMode mode) {
  Written<T> out;
  const absl::Status st = pool.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    const std::optional<uint64_t> generation = bumpGeneration(txn, group);
    if (!generation) {
      return groupNotFound(group);
    }
    const pqxx::result existing = txn.exec_params(
        std::string("SELECT created_at FROM ") + Entity<T>::kTable +
            " WHERE group_name = $1 AND id = $2::uuid FOR UPDATE",
        group, entity.id());
    if (mode == WriteMode::kUpdate && existing.empty()) {
      return absl::NotFoundError("not found");
    }
    if (mode == WriteMode::kCreate && !existing.empty()) {
      return absl::AlreadyExistsError("id");
    }
    const int64_t now = static_cast<int64_t>(std::time(nullptr));
    if (!existing.empty()) {
      entity.set_created_at(existing[0][0].as<int64_t>());
    } else if (entity.created_at() == 0) {
      entity.set_created_at(now);
    }
    entity.set_updated_at(now);
    const std::string json = Entity<T>::encode(entity).dump();
    txn.exec_params(Entity<T>::kUpsertSql, group, entity.id(),
                    entity.has_name() ? entity.name().c_str() : nullptr,
                    Entity<T>::serviceId(entity), json, entity.created_at(),
                    entity.updated_at());
    logChangeAndNotify(txn, group, *generation, Entity<T>::kTable, entity.id(), "upsert");
    txn.commit();
    out.generation = *generation;
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  out.entity = std::move(entity);
  return out;
}

template <class T>
absl::StatusOr<T> getEntity(PgPool& pool, const std::string& group, const std::string& key) {
  T out;
  const absl::Status st = pool.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    const bool by_id = config::isUuid(key);
    const pqxx::result r = txn.exec_params(
        std::string("SELECT entity FROM ") + Entity<T>::kTable + " WHERE group_name = $1 AND " +
            (by_id ? "id = $2::uuid" : "name = $2"),
        group, key);
    if (r.empty()) {
      return absl::NotFoundError("not found");
    }
    out = Entity<T>::decode(Json::parse(r[0][0].c_str()));
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return out;
}

template <class T>
absl::StatusOr<Page<T>> listEntities(PgPool& pool, const std::string& group,
                                     const std::string& service_id, const std::string& after_id,
                                     int size) {
  Page<T> page;
  const absl::Status st = pool.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    // ORDER BY the table's uuid column, not the output column id::text (see listJson).
    std::string sql = std::string("SELECT entity, id::text AS next_id FROM ") + Entity<T>::kTable +
                      " e WHERE group_name = $1 AND ($2::uuid IS NULL OR id > $2::uuid)";
    if (!service_id.empty()) {
      sql += " AND service_id = $4::uuid";
    } else {
      sql += " AND $4::text IS NULL";
    }
    sql += " ORDER BY e.id LIMIT $3";
    const pqxx::result r =
        txn.exec_params(sql, group, after_id.empty() ? nullptr : after_id.c_str(), size + 1,
                        service_id.empty() ? nullptr : service_id.c_str());
    for (int i = 0; i < static_cast<int>(r.size()) && i < size; ++i) {
      page.items.push_back(Entity<T>::decode(Json::parse(r[i][0].c_str())));
    }
    if (static_cast<int>(r.size()) > size && size > 0) {
      page.next_after_id = r[size - 1][1].as<std::string>();
    }
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return page;
}

class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& conn, std::function<void(const std::string&)> fn)
      : pqxx::notification_receiver(conn, kChannel), fn_(std::move(fn)) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override { fn_(payload); }

 private:
  std::function<void(const std::string&)> fn_;
};

}  // namespace

PgConfigStore::PgConfigStore(const Options& options)
    : options_(options), pool_(options.dsn, options.pool_size) {}

absl::StatusOr<std::unique_ptr<PgConfigStore>> PgConfigStore::open(const Options& options) {
  std::unique_ptr<PgConfigStore> store(new PgConfigStore(options));
  const absl::Status st = store->pool_.run([](pqxx::connection& conn) -> absl::Status {
    pqxx::nontransaction txn(conn);
    txn.exec("SELECT 1");
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return store;
}

PgConfigStore::~PgConfigStore() { stop(); }

absl::StatusOr<v1::Snapshot> PgConfigStore::loadSnapshot(const std::string& group) {
  v1::Snapshot snap;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> txn(conn);
    const pqxx::result g =
        txn.exec_params("SELECT generation, epoch::text FROM groups WHERE name = $1", group);
    if (g.empty()) {
      return groupNotFound(group);
    }
    snap.set_generation(g[0][0].as<uint64_t>());
    snap.set_epoch(g[0][1].as<std::string>());
    snap.set_group(group);
    {
      // What this CP's replaceConfig() committed, if the group is still at that generation:
      // the same entities a read would decode, without reading 20,000 rows back (~350 ms).
      absl::MutexLock lock(&committed_mu_);
      auto it = committed_.find(group);
      if (it != committed_.end()) {
        std::unique_ptr<v1::Snapshot> kept = std::move(it->second);
        committed_.erase(it);
        if (kept->generation() == snap.generation() && kept->epoch() == snap.epoch()) {
          snap = std::move(*kept);
          kept_snapshot_reads_.fetch_add(1, std::memory_order_relaxed);
          return absl::OkStatus();
        }
      }
    }
    for (const auto& row :
         txn.exec_params("SELECT entity FROM services WHERE group_name = $1 ORDER BY id", group)) {
      *snap.add_services() = Entity<v1::Service>::decode(Json::parse(row[0].c_str()));
    }
    for (const auto& row :
         txn.exec_params("SELECT entity FROM routes WHERE group_name = $1 ORDER BY id", group)) {
      *snap.add_routes() = Entity<v1::Route>::decode(Json::parse(row[0].c_str()));
    }
    detail::loadSchemaEntities(txn, group, &snap);
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return snap;
}

absl::StatusOr<uint64_t> PgConfigStore::currentGeneration(const std::string& group) {
  uint64_t generation = 0;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    const pqxx::result r =
        txn.exec_params("SELECT generation FROM groups WHERE name = $1", group);
    if (r.empty()) {
      return groupNotFound(group);
    }
    generation = r[0][0].as<uint64_t>();
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return generation;
}

absl::StatusOr<bool> PgConfigStore::startNewEpochIfBehind(const std::string& group,
                                                          const std::string& epoch,
                                                          uint64_t generation) {
  bool started = false;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    // The generation moves on too, so every CP replica reloads (and a generation of the new
    // epoch is never one a DP already ran under the old one).
    const pqxx::result r = txn.exec_params(
        "UPDATE groups SET epoch = gen_random_uuid(), generation = generation + 1 "
        "WHERE name = $1 AND epoch::text = $2 AND generation < $3 RETURNING generation",
        group, epoch, static_cast<int64_t>(std::min<uint64_t>(generation, INT64_MAX)));
    if (!r.empty()) {
      started = true;
      txn.exec_params("SELECT pg_notify($1, $2)", kChannel,
                      group + ":" + std::to_string(r[0][0].as<uint64_t>()));
    }
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return started;
}

void PgConfigStore::setChangeCallback(ChangeCallback callback) {
  absl::MutexLock lock(&callback_mu_);
  callback_ = std::move(callback);
}

void PgConfigStore::notify(const std::string& group, uint64_t generation) {
  ChangeCallback cb;
  {
    absl::MutexLock lock(&callback_mu_);
    cb = callback_;
  }
  if (cb) {
    cb(group, generation);
  }
}

void PgConfigStore::startListening() {
  if (listener_.joinable()) {
    return;
  }
  listener_ = std::thread([this] { listenLoop(); });
  first_attempt_done_.WaitForNotificationWithTimeout(absl::Seconds(5));
}

void PgConfigStore::stop() {
  if (stopping_.exchange(true)) {
    return;
  }
  stop_requested_.Notify();
  if (listener_.joinable()) {
    listener_.join();
  }
}

void PgConfigStore::listenLoop() {
  bool caught_up_needed = false;
  while (!stopping_.load()) {
    try {
      pqxx::connection conn(options_.dsn);
      Receiver receiver(conn, [this](const std::string& payload) {
        const size_t colon = payload.rfind(':');
        if (colon == std::string::npos) {
          return;
        }
        try {
          notify(payload.substr(0, colon), std::stoull(payload.substr(colon + 1)));
        } catch (const std::exception&) {
          LOG_WARN("store", "ignoring malformed notification '%s'", payload);
        }
      });
      if (caught_up_needed) {
        // Changes committed while we were disconnected produced no notification for us.
        pqxx::nontransaction txn(conn);
        for (const auto& row : txn.exec("SELECT name, generation FROM groups")) {
          notify(row[0].as<std::string>(), row[1].as<uint64_t>());
        }
        LOG_INFO("store", "LISTEN %s re-established", kChannel);
      }
      caught_up_needed = true;
      if (!first_attempt_done_.HasBeenNotified()) {
        first_attempt_done_.Notify();
      }
      while (!stopping_.load()) {
        conn.await_notification(0, 200 * 1000);  // wake up to check stopping_
      }
    } catch (const std::exception& e) {
      caught_up_needed = true;
      if (!first_attempt_done_.HasBeenNotified()) {
        first_attempt_done_.Notify();
      }
      const absl::Status st = statusFromException(e, options_.dsn);
      LOG_WARN("store", "change listener: %s; retrying in 1s", st.message());
      stop_requested_.WaitForNotificationWithTimeout(absl::Seconds(1));
    }
  }
}

absl::StatusOr<v1::Service> PgConfigStore::getService(const std::string& group,
                                                      const std::string& id_or_name) {
  return getEntity<v1::Service>(pool_, group, id_or_name);
}

absl::StatusOr<Page<v1::Service>> PgConfigStore::listServices(const std::string& group,
                                                              const std::string& after_id,
                                                              int size) {
  return listEntities<v1::Service>(pool_, group, "", after_id, size);
}

absl::StatusOr<Written<v1::Service>> PgConfigStore::createService(const std::string& group,
                                                                  v1::Service service) {
  return writeEntity(pool_, group, std::move(service), WriteMode::kCreate);
}

absl::StatusOr<Written<v1::Service>> PgConfigStore::upsertService(const std::string& group,
                                                                  v1::Service service) {
  return writeEntity(pool_, group, std::move(service), WriteMode::kUpsert);
}

absl::StatusOr<Written<v1::Service>> PgConfigStore::updateService(const std::string& group,
                                                                  v1::Service service) {
  return writeEntity(pool_, group, std::move(service), WriteMode::kUpdate);
}

absl::StatusOr<std::optional<uint64_t>> PgConfigStore::deleteService(const std::string& group,
                                                                     const std::string& id) {
  return deleteJson(group, "services", id);
}

absl::StatusOr<v1::Route> PgConfigStore::getRoute(const std::string& group,
                                                  const std::string& id_or_name) {
  return getEntity<v1::Route>(pool_, group, id_or_name);
}

absl::StatusOr<Page<v1::Route>> PgConfigStore::listRoutes(const std::string& group,
                                                          const std::string& service_id,
                                                          const std::string& after_id, int size) {
  return listEntities<v1::Route>(pool_, group, service_id, after_id, size);
}

absl::StatusOr<Written<v1::Route>> PgConfigStore::createRoute(const std::string& group,
                                                              v1::Route route) {
  return writeEntity(pool_, group, std::move(route), WriteMode::kCreate);
}

absl::StatusOr<Written<v1::Route>> PgConfigStore::upsertRoute(const std::string& group,
                                                              v1::Route route) {
  return writeEntity(pool_, group, std::move(route), WriteMode::kUpsert);
}

absl::StatusOr<Written<v1::Route>> PgConfigStore::updateRoute(const std::string& group,
                                                              v1::Route route) {
  return writeEntity(pool_, group, std::move(route), WriteMode::kUpdate);
}

absl::StatusOr<std::optional<uint64_t>> PgConfigStore::deleteRoute(const std::string& group,
                                                                   const std::string& id) {
  return deleteJson(group, "routes", id);
}

}  // namespace portico::cp
