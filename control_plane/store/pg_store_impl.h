// PgConfigStore: the PostgreSQL ConfigStore plus the entity CRUD the Admin API needs. Every
// write is one transaction that also bumps the group's generation, appends to change_log and
// NOTIFYs portico_config '<group>:<generation>'; a listener thread turns those notifications
// (from this CP or any replica) into ChangeCallback calls. All methods block on the database:
// call them from DB worker threads, never from an HTTP I/O thread. libpqxx never escapes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/config/schema.h"
#include "control_plane/store/pg_pool.h"
#include "control_plane/store/store.h"

namespace portico::cp {

namespace detail {
struct CommitProbe;  // pg_store_internal.h
}  // namespace detail

enum class WriteMode { kCreate, kUpsert, kUpdate };

template <class T>
struct Page {
  std::vector<T> items;
  // Set when more items follow: the id of the last item, to pass as `after_id` next time.
  std::optional<std::string> next_after_id;
};

template <class T>
struct Written {
  T entity;             // as stored: timestamps set
  uint64_t generation;  // the group's generation this write produced
};

// Generic entity access over Kong JSON, for every entity type of common/config/entities.h.
// Filters of a list; empty strings mean "no filter".
struct ListQuery {
  std::string after_id;            // keyset pagination: ids greater than this one
  int size = 100;
  std::string foreign_field;       // with foreign_id: only entities whose <field>.id matches
  std::string foreign_id;
  std::vector<std::string> tags;   // Kong's ?tags=: all of them, or any with tags_or
  bool tags_or = false;
  std::string equals_field;        // with equals_value: entity-><field> equals the string
  std::string equals_value;
  bool raw = false;                // fill JsonPage::raw_items (stored JSON text), not items
};

// A config group (Konnect "control plane"). Timestamps are RFC 3339 UTC strings.
struct GroupRecord {
  std::string id;
  std::string name;
  std::optional<std::string> description;
  config::Json labels = config::Json::object();
  std::string created_at;
  std::string updated_at;
  uint64_t generation = 0;
};

// An Admin API token row; the token itself is never stored (see admin_api/admin_auth.h).
struct AdminRecord {
  std::string id;
  std::string name;
  std::string role;  // "read-only" or "admin"
  std::string key_id;
  std::string salt;
  std::string token_hash;
  std::string created_at;
  bool revoked = false;
};

struct JsonPage {
  std::vector<config::Json> items;
  std::vector<std::string> raw_items;  // with ListQuery::raw: each entity's JSON text
  std::optional<std::string> next_after_id;
};

struct JsonWritten {
  config::Json entity;  // as stored: id and timestamps set
  uint64_t generation;
};

// Children written in the write's own transaction, replacing every existing `type` entity
// whose `foreign_field` references the written entity (a certificate's `snis`).
struct ChildReplace {
  std::string type;
  std::string foreign_field;
  std::vector<config::Json> entities;  // processed entities, ids set, foreign key filled in
};

// A group's whole config as POST /config gives it: every entity of each type in Kong JSON as
// the Admin API stores it (processed, id set, foreign keys as {"id": ...}). A type absent
// from the list has no entities.
struct TypedEntities {
  std::string type;  // entity table ("services")
  std::vector<config::Json> entities;
  std::vector<std::string> stored_text;  // set by replaceConfig: each entity's JSON as stored
};

struct ReplaceOutcome {
  bool changed = false;     // false: the group already held exactly this config; no write
  uint64_t generation = 0;  // the group's generation afterwards (the new one when changed)
  uint64_t upserted = 0;    // entities inserted or changed
  uint64_t deleted = 0;     // entities removed
};

// A group's whole config as stored: each type's entities (JSON text, ordered by id), types
// parents first, read in one consistent transaction.
struct ConfigExport {
  uint64_t generation = 0;
  std::vector<std::pair<std::string, std::vector<std::string>>> by_type;
};

// A write whose COMMIT got no answer (the connection or the server went away during it) and
// whose fate the store could not learn within Options::commit_resolve_timeout: it may have
// committed or not. kUnavailable with a payload, so a caller that only looks at the code
// still sees "unavailable"; the Admin API answers it apart from "retry later" (a blind retry
// of a create could write it twice). `what` names the write for the logs.
absl::Status commitOutcomeUnknown(const std::string& what);
bool isCommitOutcomeUnknown(const absl::Status& status);

// Kong-level conflicts come back as Status codes with a JSON message the Admin API turns
// into Kong's error bodies (and nothing else reads):
//   kAlreadyExists       {"primary_key": "<id>"} or {"unique": {<field>: <value>, ...}}
//   kFailedPrecondition  {"foreign_key": "<field>", "id": "<id>", "reference": "<entities>"}
//                        or {"referenced_by": "<entities>"} (delete of a referenced parent)
//   kNotFound            update of an entity that does not exist

class PgConfigStore final : public ConfigStore {
 public:
  struct Options {
    std::string dsn;
    int pool_size = 4;
    // How long a write whose COMMIT got no answer keeps trying to find out whether it
    // committed (reconnecting while the database restarts) before it answers
    // commitOutcomeUnknown().
    std::chrono::milliseconds commit_resolve_timeout{10000};
  };

  // Connects once to check that the database answers. kUnavailable carries the one-line
  // "cannot connect to PostgreSQL at host:port: reason".
  static absl::StatusOr<std::unique_ptr<PgConfigStore>> open(const Options& options);
  ~PgConfigStore() override;

  // Interface ConfigStore
  absl::StatusOr<config::v1::Snapshot> loadSnapshot(const std::string& group) override;
  absl::StatusOr<uint64_t> currentGeneration(const std::string& group) override;
  absl::StatusOr<bool> startNewEpochIfBehind(const std::string& group, const std::string& epoch,
                                             uint64_t generation) override;
  void setChangeCallback(ChangeCallback callback) override;

  // Starts the LISTEN thread and waits (up to 5 s) until it listens, so every change
  // committed after this returns is reported. The thread reconnects on its own when the
  // database drops and then reports every group's current generation, since notifications
  // may have been missed meanwhile.
  void startListening();
  // Stops the listener thread; idempotent. Called before destruction.
  void stop();

  // Entity CRUD. `id_or_name` follows Kong: a UUID is an id, anything else a name.
  // Writes answer kAlreadyExists with message "id" or "name" (the violated unique key),
  // kNotFound for a missing entity (update) or group, kFailedPrecondition when a foreign key
  // does not hold (route -> missing service; deleting a service routes still use).
  absl::StatusOr<config::v1::Service> getService(const std::string& group,
                                                 const std::string& id_or_name);
  absl::StatusOr<Page<config::v1::Service>> listServices(const std::string& group,
                                                         const std::string& after_id, int size);
  absl::StatusOr<Written<config::v1::Service>> createService(const std::string& group,
                                                             config::v1::Service service);
  // PUT: insert or replace by id, keeping created_at of an existing entity.
  absl::StatusOr<Written<config::v1::Service>> upsertService(const std::string& group,
                                                             config::v1::Service service);
  // PATCH: replace an existing entity (kNotFound if it is gone).
  absl::StatusOr<Written<config::v1::Service>> updateService(const std::string& group,
                                                             config::v1::Service service);
  // The new generation, or nullopt when nothing was deleted (no generation bump).
  absl::StatusOr<std::optional<uint64_t>> deleteService(const std::string& group,
                                                        const std::string& id);

  absl::StatusOr<config::v1::Route> getRoute(const std::string& group,
                                             const std::string& id_or_name);
  // `service_id` empty = every route of the group.
  absl::StatusOr<Page<config::v1::Route>> listRoutes(const std::string& group,
                                                     const std::string& service_id,
                                                     const std::string& after_id, int size);
  absl::StatusOr<Written<config::v1::Route>> createRoute(const std::string& group,
                                                         config::v1::Route route);
  absl::StatusOr<Written<config::v1::Route>> upsertRoute(const std::string& group,
                                                         config::v1::Route route);
  absl::StatusOr<Written<config::v1::Route>> updateRoute(const std::string& group,
                                                         config::v1::Route route);
  absl::StatusOr<std::optional<uint64_t>> deleteRoute(const std::string& group,
                                                      const std::string& id);

  // ---- generic entity access (all entity types, Kong JSON) ---------------------------------
  // By id, or by the type's endpoint key (certificates: an SNI name). With `owner_field`
  // set, the entity must reference `owner_id` through it (nested endpoints): else kNotFound.
  absl::StatusOr<config::Json> getJson(const std::string& group, const std::string& type,
                                       const std::string& id_or_key,
                                       const std::string& owner_field = "",
                                       const std::string& owner_id = "");
  absl::StatusOr<JsonPage> listJson(const std::string& group, const std::string& type,
                                    const ListQuery& query);
  // One transaction: unique and foreign-key checks, insert/replace, generation bump,
  // change_log rows, NOTIFY. `entity` is processed Kong JSON with its id set.
  // Group commit: writes of the same group that wait at the same time share a transaction
  // (one generation, one NOTIFY, one WAL flush); each still runs under its own savepoint and
  // gets its own answer, as if it had run alone. Blocks until committed.
  absl::StatusOr<JsonWritten> writeJson(const std::string& group, const std::string& type,
                                        config::Json entity, WriteMode mode,
                                        const std::optional<ChildReplace>& children = {});
  // Deletes the entity and, in the same transaction, every entity that cascades from it
  // (one change_log row each). kFailedPrecondition {"referenced_by"} if a non-cascading
  // reference holds it. nullopt when nothing was deleted.
  absl::StatusOr<std::optional<uint64_t>> deleteJson(const std::string& group,
                                                     const std::string& type,
                                                     const std::string& id);
  // ---- whole-group config (POST/GET /config) ------------------------------------------------
  // Makes `entities` (already validated as a whole: references resolve inside it, unique keys
  // are unique) the group's entire config in one transaction: entities it lacks are deleted,
  // new or different ones written, identical ones (timestamps aside) left alone; one
  // generation bump, one change_log row per entity changed, one NOTIFY. Nothing changed = no
  // bump, changed=false. Fills in each entity's created_at/updated_at as stored (kept from the
  // stored entity when it exists, else the given one or now). Serialized with every other
  // writer of the group by its row lock, taken first. kNotFound for an unknown group,
  // kInvalidArgument for an unknown type, kAlreadyExists/kFailedPrecondition when a database
  // constraint still refuses it (nothing written). The committed config is also kept in
  // memory as a snapshot, which the next loadSnapshot() of that very generation and epoch
  // returns instead of reading it back. Blocks.
  absl::StatusOr<ReplaceOutcome> replaceConfig(const std::string& group,
                                               std::vector<TypedEntities>* entities);
  // The same replace, begun before the new config is validated: with only its entity ids
  // (type, id) it takes the group's lock and deletes what the new config lacks, then asks
  // `source` for the validated entities and goes on as replaceConfig(). `source` blocks until
  // the caller has them, and gives null if the config proved invalid: the replace is then
  // rolled back and answers kCancelled. POST /config runs this on a thread of its own while
  // it validates (10,000 routes: the deletes, ~190 ms of PostgreSQL, overlap the load).
  // `source` may be called again when a deadlock makes the replace retry.
  using EntityIds = std::vector<std::pair<std::string, std::string>>;
  using EntitiesSource = std::function<std::vector<TypedEntities>*()>;
  absl::StatusOr<ReplaceOutcome> replaceConfigEarly(const std::string& group,
                                                    const EntityIds& ids,
                                                    const EntitiesSource& source);
  // The group's every entity, for GET /config. kNotFound for an unknown group. Blocks.
  absl::StatusOr<ConfigExport> exportConfig(const std::string& group);
  // Entity types with every type a type references before it (the order inserts need).
  static const std::vector<std::string>& typesParentsFirst();

  // How many loadSnapshot() calls a replaceConfig()'s kept snapshot answered (tests).
  uint64_t keptSnapshotReads() const { return kept_snapshot_reads_.load(); }

  // How many group-commit transactions ran and how many writes they carried (tests, metrics).
  struct WriteBatchStats {
    uint64_t batches = 0;
    uint64_t writes = 0;
  };
  WriteBatchStats writeBatchStats() const {
    return {batches_.load(std::memory_order_relaxed),
            batched_writes_.load(std::memory_order_relaxed)};
  }
  // Write transactions whose COMMIT got no answer, by what resolveCommit found (metrics).
  struct InDoubtStats {
    uint64_t committed = 0;
    uint64_t not_committed = 0;
    uint64_t unknown = 0;
  };
  // The connection pool's state (metrics).
  PgPool::Stats poolStats() const { return pool_.stats(); }
  // The connection pool, shared with the stores beside this one (the catalog, pg_catalog.h).
  PgPool& pool() { return pool_; }
  InDoubtStats inDoubtStats() const {
    return {in_doubt_committed_.load(std::memory_order_relaxed),
            in_doubt_aborted_.load(std::memory_order_relaxed),
            in_doubt_unknown_.load(std::memory_order_relaxed)};
  }

  // ---- groups (control planes) ------------------------------------------------------------
  // Every group ordered by name, `default` included.
  absl::StatusOr<std::vector<GroupRecord>> listGroups();
  // By id (UUID) or name; kNotFound.
  absl::StatusOr<GroupRecord> getGroup(const std::string& id_or_name);
  // kAlreadyExists when the name is taken. `group.id` empty = generated.
  absl::StatusOr<GroupRecord> createGroup(const GroupRecord& group);
  // Sets what `patch` holds of "description" (string or null) and "labels" (object of
  // strings), both validated by the caller; kNotFound.
  absl::StatusOr<GroupRecord> updateGroup(const std::string& name, const config::Json& patch);
  // Deletes the group and, in the same transaction, every entity and change_log row of it.
  // kFailedPrecondition for `default`; kNotFound if absent.
  absl::Status deleteGroup(const std::string& name);

  // ---- Admin API tokens ---------------------------------------------------------------------
  // kAlreadyExists when an active admin has that name.
  absl::StatusOr<AdminRecord> createAdmin(const AdminRecord& admin);
  absl::StatusOr<std::vector<AdminRecord>> listAdmins();
  // Revokes the active admin named (or with id) `name_or_id`; kNotFound if none.
  absl::Status revokeAdmin(const std::string& name_or_id);
  // The active admin whose token has `key_id`; kNotFound if none (or revoked).
  absl::StatusOr<AdminRecord> findAdminByKeyId(const std::string& key_id);

  // GET /tags[/{tag}]: {entity_name, entity_id, tag} rows ordered by tag, entity, id.
  absl::StatusOr<std::vector<config::Json>> listTags(const std::string& group,
                                                     const std::string& tag, int64_t offset,
                                                     int size);

 private:
  struct PendingWrite;  // one writeJson call waiting for its batch (pg_entities.cc)
  struct WriteQueue {
    std::vector<PendingWrite*> pending;
    bool leader_active = false;  // a thread is running a batch of this group
  };

  explicit PgConfigStore(const Options& options);
  // Runs `batch` (all of one group) in one transaction and fills in every request's answer.
  void runWriteBatch(const std::string& group, const std::vector<PendingWrite*>& batch);
  // Queues `w` in its group's batch and returns once it has its answer (w.status, w.out).
  void runInBatch(const std::string& group, PendingWrite& w);
  // After a COMMIT that got no answer (`lost`): on fresh connections, until
  // Options::commit_resolve_timeout, asks PostgreSQL what became of the transaction. OK if it
  // committed; `lost` (kUnavailable, nothing written) if it provably did not;
  // commitOutcomeUnknown() if that cannot be told in time.
  absl::Status resolveCommit(const detail::CommitProbe& probe, const absl::Status& lost);
  void listenLoop();
  void notify(const std::string& group, uint64_t generation);

  const Options options_;
  PgPool pool_;
  absl::Mutex callback_mu_;
  ChangeCallback callback_ ABSL_GUARDED_BY(callback_mu_);
  // The config the last replaceConfig() committed (of whichever group: at most one entry),
  // decoded as loadSnapshot() decodes rows (generation, epoch and group set), until
  // loadSnapshot() takes it.
  std::atomic<uint64_t> kept_snapshot_reads_{0};
  absl::Mutex committed_mu_;
  std::map<std::string, std::unique_ptr<config::v1::Snapshot>> committed_
      ABSL_GUARDED_BY(committed_mu_);
  absl::Mutex batch_mu_;
  std::map<std::string, WriteQueue> write_queues_ ABSL_GUARDED_BY(batch_mu_);  // by group
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> batched_writes_{0};
  std::atomic<uint64_t> in_doubt_committed_{0};
  std::atomic<uint64_t> in_doubt_aborted_{0};
  std::atomic<uint64_t> in_doubt_unknown_{0};
  std::atomic<bool> stopping_{false};
  absl::Notification stop_requested_;
  absl::Notification first_attempt_done_;  // LISTEN established or first connect failed
  std::thread listener_;
};

}  // namespace portico::cp
