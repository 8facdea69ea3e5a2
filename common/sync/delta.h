// Deltas between snapshots of one group. Both planes use the same three functions, so a DP
// that applies a delta ends with byte-for-byte the snapshot the CP would have sent in full
// (same canonical order, same hash):
//   canonicalize()  every entity list sorted by id (what the CP hashes and sends);
//   applyDelta()    upserts by id, deletions plus what referenced them (Kong's cascades);
//   hashSnapshot()  hex SHA-256 of the deterministic serialization = config_hash.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config/key_auth_table.h"
#include "portico/config/v1/config.pb.h"
#include "portico/sync/v1/sync.pb.h"

namespace portico::sync {

// Sorts every entity list of `snapshot` by id (byte order of the lower-case UUID text, which
// is PostgreSQL's uuid order). Cheap when already sorted (one linear check per list).
void canonicalize(config::v1::Snapshot* snapshot);

// Applies `delta` to the canonical `snapshot` in place and sets its generation to the
// delta's. Deleting an entity also deletes every entity whose foreign key ({"id": ...})
// points at a deleted one, transitively: the PostgreSQL schema cascades (plugins,
// credentials, targets, snis) or restricts (routes -> service) those keys, so either way the
// result equals a fresh read. kInvalidArgument for an unknown entity type or an entity
// without id; `snapshot` may then be partly changed, so callers apply to a copy they can drop.
absl::Status applyDelta(config::v1::Snapshot* snapshot, const sync::v1::SnapshotDelta& delta);

// applyDelta() on a snapshot held split, as the DP holds it (codec.h, decodePayloadSplit):
// `rest` without key-auth credentials and `*key_auth` with them. Credentials the delta
// upserts or deletes, and those of consumers it deletes, end in a new `*key_auth` table; the
// old one is left as it was. On error both may be partly changed (apply to copies).
absl::Status applyDelta(config::v1::Snapshot* rest,
                        std::shared_ptr<const config::KeyAuthTable>* key_auth,
                        const sync::v1::SnapshotDelta& delta);

// Hex SHA-256 of the deterministic serialization (the config_hash of a full push).
absl::StatusOr<std::string> hashSnapshot(const config::v1::Snapshot& snapshot);

// Whether `entity_type` names an entity list of Snapshot ("routes", "consumers", ...).
bool isEntityType(const std::string& entity_type);

// Number of entities of all types.
uint64_t entityCount(const config::v1::Snapshot& snapshot);

}  // namespace portico::sync
