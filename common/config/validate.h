// Snapshot validation: every entity of a snapshot through its schema, plus what ties them
// together (unique ids and keys, foreign keys that resolve). The control plane's declarative
// loader and the data plane (on every snapshot it applies) run it, so a config the CP accepts
// is exactly a config the DP accepts.
#pragma once

#include "common/config/schema.h"
#include "common/config/typedefs.h"
#include "portico/config/v1/config.pb.h"

namespace portico::config {

class KeyAuthTable;

// Every entity, plus what ties them together (unique ids and names, routes naming services
// that exist). Empty means the snapshot may be applied. `key_auth`: the snapshot's key-auth
// credentials when the DP holds them as a table (common/config/key_auth_table.h) instead of
// in the proto; checked with the same rules and messages.
// `check_entities` false skips each entity's own rules and keeps what ties them together (ids,
// names, unique keys, foreign keys): for a caller that has just run those very rules on every
// entity, the declarative loader. The DP always checks everything.
FieldErrors validateSnapshot(const v1::Snapshot& snapshot,
                             const KeyAuthTable* key_auth = nullptr,
                             bool check_entities = true);

}  // namespace portico::config
