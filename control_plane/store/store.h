// ConfigStore: what the rest of the control plane needs from the database of record. The
// PostgreSQL implementation (pg_store_impl.h) contains every libpqxx exception and answers
// absl::Status; kUnavailable means the database could not be reached and a retry may work.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "portico/config/v1/config.pb.h"

namespace portico::cp {

class ConfigStore {
 public:
  virtual ~ConfigStore() = default;

  // A consistent read of a group's whole config and the generation it corresponds to (one
  // REPEATABLE READ transaction). Called from the sync module's own thread; thread-safe.
  virtual absl::StatusOr<config::v1::Snapshot> loadSnapshot(const std::string& group) = 0;

  // The group's committed generation. Thread-safe.
  virtual absl::StatusOr<uint64_t> currentGeneration(const std::string& group) = 0;

  // Called with (group, generation) after a change to a group commits, on this CP or on any
  // replica sharing the database (PostgreSQL LISTEN/NOTIFY). Invoked on the store's listener
  // thread; keep it short. Set once before start-up.
  using ChangeCallback = std::function<void(const std::string& group, uint64_t generation)>;
  virtual void setChangeCallback(ChangeCallback callback) = 0;
};

}  // namespace portico::cp
