// PgChangeLogStore: a ConfigStore that adds loadChanges() (deltas) to the PostgreSQL store
// by reading change_log and the changed rows with its own small connection pool. It wraps
// the PgConfigStore (snapshots, generations, change notifications are delegated) so the
// entity CRUD code stays untouched. libpqxx never escapes.
#pragma once

#include <memory>
#include <string>

#include "control_plane/store/pg_pool.h"
#include "control_plane/store/store.h"

namespace portico::cp {

class PgChangeLogStore final : public ConfigStore {
 public:
  // `base` must outlive this object. `pool_size` connections are opened on demand.
  PgChangeLogStore(ConfigStore& base, std::string dsn, int pool_size = 2);

  // Interface ConfigStore
  absl::StatusOr<config::v1::Snapshot> loadSnapshot(const std::string& group) override {
    return base_.loadSnapshot(group);
  }
  absl::StatusOr<uint64_t> currentGeneration(const std::string& group) override {
    return base_.currentGeneration(group);
  }
  void setChangeCallback(ChangeCallback callback) override {
    base_.setChangeCallback(std::move(callback));
  }
  absl::StatusOr<bool> startNewEpochIfBehind(const std::string& group, const std::string& epoch,
                                             uint64_t generation) override {
    return base_.startNewEpochIfBehind(group, epoch, generation);
  }
  absl::StatusOr<ChangeSet> loadChanges(const std::string& group, uint64_t after_generation,
                                        uint64_t max_entities) override;

 private:
  ConfigStore& base_;
  PgPool pool_;
};

}  // namespace portico::cp
