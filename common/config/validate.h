// The one semantic validation path for config entities. The control plane runs it on every
// Admin API write (after JSON decoding) and the data plane runs it again on every snapshot it
// applies, so a config the CP accepts is exactly a config the DP accepts.
#pragma once

#include <string>
#include <vector>

#include "portico/config/v1/config.pb.h"

namespace portico::config {

// One rejected field. `field` is a Kong-style path ("host", "paths.1", "service.id"; 1-based
// array indexes as in Kong's messages) or "@entity" for entity-level checks; `reason` is
// Kong's message text ("must not have a port").
struct FieldError {
  std::string entity_type;  // "services", "routes", ...
  std::string entity_id;
  std::string field;
  std::string reason;

  bool operator==(const FieldError&) const = default;
};
using FieldErrors = std::vector<FieldError>;

FieldErrors validateService(const v1::Service& service);
FieldErrors validateRoute(const v1::Route& route);
// Every entity, plus what ties them together (unique ids and names, routes naming services
// that exist). Empty means the snapshot may be applied.
FieldErrors validateSnapshot(const v1::Snapshot& snapshot);

}  // namespace portico::config
