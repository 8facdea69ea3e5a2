// BodyStream: an Admin API answer produced piece by piece while it is written out, for the
// few answers too large to build whole (GET /vitals/requests: ~100 MB for an hour by route).
// Header-only, so handlers in other libraries (control_plane/vitals) can return one without
// linking the Admin API.
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"

namespace portico::cp {

// Called on a DB worker thread, never twice at once, until it sets *last: fills *chunk
// (cleared by the caller; may stay empty) with the next piece of the body. An error after
// the head was sent can only end the answer: the connection is closed before the final
// chunk, which HTTP clients report as an incomplete response.
using BodyStream = std::function<absl::Status(std::string* chunk, bool* last)>;

}  // namespace portico::cp
