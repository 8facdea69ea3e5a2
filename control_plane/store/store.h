// ConfigStore: what the rest of the control plane needs from the database of record. The
// PostgreSQL implementation (pg_store_impl.h) contains every libpqxx exception and answers
// absl::Status; kUnavailable means the database could not be reached and a retry may work.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "portico/config/v1/config.pb.h"

namespace portico::cp {

// A group's changes after some generation, read in one consistent transaction with the
// generation they lead to (for deltas; see docs/sync-protocol.md).
struct ChangeSet {
  uint64_t generation = 0;       // the group's generation these changes lead to
  std::string epoch;             // the group's epoch at that generation
  config::v1::Snapshot upserts;  // each changed entity as stored at `generation`
  std::vector<std::pair<std::string, std::string>> deletes;  // (entity_type, id)
};

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

  // The changes of `group` after `after_generation` up to its current generation, each
  // entity once (its last state). kOutOfRange when the change log does not cover every
  // generation of that range (pruned, or a write that logged nothing) or it logged more
  // than `max_entities` changes (an entity changed twice counts twice): the caller sends a
  // full snapshot instead. Stores without a
  // change log answer kUnimplemented (the default). Thread-safe; blocks.
  // A data plane runs `generation` of `epoch`, the group's epoch, but the database's
  // generation is lower: its history was rewound (a restore from backup). Starts a new epoch
  // (and generation) in the same transaction that checks both, notifying like a write; true
  // when it did, false when the database already moved on. Thread-safe; blocks.
  virtual absl::StatusOr<bool> startNewEpochIfBehind(const std::string& group,
                                                     const std::string& epoch,
                                                     uint64_t generation) {
    (void)group;
    (void)epoch;
    (void)generation;
    return false;
  }

  virtual absl::StatusOr<ChangeSet> loadChanges(const std::string& group,
                                                uint64_t after_generation,
                                                uint64_t max_entities) {
    (void)group;
    (void)after_generation;
    (void)max_entities;
    return absl::UnimplementedError("this store keeps no change log");
  }
};

}  // namespace portico::cp
