// The immutable config a data plane serves from: the router and the services it points at,
// built once from a validated config::v1::Snapshot on the config thread and published through
// Versioned<Snapshot>. A request reads the pointer once and keeps it until it finishes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/versioned.h"
#include "portico/config/v1/config.pb.h"

namespace portico::dp {

class Snapshot {
 public:
  // Builds router and service tables. The caller has already run config::validateSnapshot();
  // build() still fails cleanly (never crashes) on anything it cannot compile.
  static absl::StatusOr<std::shared_ptr<const Snapshot>> build(config::v1::Snapshot config,
                                                               std::string hash);

  uint64_t generation() const { return config_.generation(); }
  const std::string& hash() const { return hash_; }
  const config::v1::Snapshot& config() const { return config_; }

  // (router, services, ... : defined by the proxy work)

 private:
  config::v1::Snapshot config_;
  std::string hash_;
};

using SnapshotConstSharedPtr = std::shared_ptr<const Snapshot>;
using SnapshotStore = Versioned<Snapshot>;

}  // namespace portico::dp
