// The DP's on-disk copy of its last applied snapshot (--config_cache_path), so a DP that
// restarts while the CP is down serves its last good config. Written only after a successful
// apply, atomically (temp file, fsync, rename, fsync of the directory): a crash leaves either
// the old file or the new one, never a torn one. Stored as the encoded payload the CP sent,
// so loading it runs the same decode-and-verify path as a push.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config/key_auth_table.h"
#include "common/sync/codec.h"
#include "portico/config/v1/config.pb.h"
#include "portico/sync/v1/sync.pb.h"

namespace portico::dp {

// Atomically replaces `path` with `snapshot`'s encoded payload. Blocking disk I/O: call it on
// the sync thread, never on a worker.
absl::Status saveSnapshotCache(const std::string& path, const sync::AssembledSnapshot& snapshot);

struct CachedConfig {
  uint64_t generation = 0;
  std::string config_hash;
  config::v1::Snapshot snapshot;  // without its key-auth credentials, which are in key_auth
  std::shared_ptr<const config::KeyAuthTable> key_auth;
};

// Reads and verifies (decompress, hash, parse) the cache. kNotFound when there is no file;
// any other error means the file is unusable (and is left alone for inspection).
absl::StatusOr<CachedConfig> loadSnapshotCache(
    const std::string& path, uint64_t max_snapshot_bytes = sync::kDefaultMaxSnapshotBytes);

}  // namespace portico::dp
