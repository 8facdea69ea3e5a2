// PgConfigStore: the PostgreSQL ConfigStore plus the entity CRUD the Admin API needs. Every
// write is one transaction that also bumps the group's generation, appends to change_log and
// NOTIFYs portico_config '<group>:<generation>'; a listener thread turns those notifications
// (from this CP or any replica) into ChangeCallback calls. All methods block on the database:
// call them from DB worker threads, never from an HTTP I/O thread. libpqxx never escapes.
#pragma once

#include <atomic>
#include <cstdint>
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
};

struct JsonPage {
  std::vector<config::Json> items;
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
  };

  // Connects once to check that the database answers. kUnavailable carries the one-line
  // "cannot connect to PostgreSQL at host:port: reason".
  static absl::StatusOr<std::unique_ptr<PgConfigStore>> open(const Options& options);
  ~PgConfigStore() override;

  // Interface ConfigStore
  absl::StatusOr<config::v1::Snapshot> loadSnapshot(const std::string& group) override;
  absl::StatusOr<uint64_t> currentGeneration(const std::string& group) override;
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
  absl::StatusOr<JsonWritten> writeJson(const std::string& group, const std::string& type,
                                        config::Json entity, WriteMode mode,
                                        const std::optional<ChildReplace>& children = {});
  // Deletes the entity and, in the same transaction, every entity that cascades from it
  // (one change_log row each). kFailedPrecondition {"referenced_by"} if a non-cascading
  // reference holds it. nullopt when nothing was deleted.
  absl::StatusOr<std::optional<uint64_t>> deleteJson(const std::string& group,
                                                     const std::string& type,
                                                     const std::string& id);
  // GET /tags[/{tag}]: {entity_name, entity_id, tag} rows ordered by tag, entity, id.
  absl::StatusOr<std::vector<config::Json>> listTags(const std::string& group,
                                                     const std::string& tag, int64_t offset,
                                                     int size);

 private:
  explicit PgConfigStore(const Options& options);
  void listenLoop();
  void notify(const std::string& group, uint64_t generation);

  const Options options_;
  PgPool pool_;
  absl::Mutex callback_mu_;
  ChangeCallback callback_ ABSL_GUARDED_BY(callback_mu_);
  std::atomic<bool> stopping_{false};
  absl::Notification stop_requested_;
  absl::Notification first_attempt_done_;  // LISTEN established or first connect failed
  std::thread listener_;
};

}  // namespace portico::cp
